namespace Sculpt.Graph;

/// <summary>A run of consecutive channels of one tensor that all belong to one channel space.</summary>
public readonly record struct Segment(int Space, int Offset, int Length);

public sealed record Member(string Node, Role Role, int Offset);

/// <summary>Channels that must be removed together: one index space shared by every member.</summary>
public sealed class ChannelGroup
{
    public int Id { get; init; }
    public int Width { get; init; }
    /// <summary>Channels go in whole blocks of this many (a group norm's groups); 1 for single channels.</summary>
    public int Block { get; init; } = 1;
    public bool Prunable { get; set; } = true;
    public string? ProtectedBecause { get; set; }
    public List<Member> Members { get; } = new();
    public IEnumerable<Member> Producers => Members.Where(m => m.Role == Role.Producer);
    public IEnumerable<Member> Consumers => Members.Where(m => m.Role == Role.Consumer);
    /// <summary>The node whose output started the group (its first producer, or the input node).</summary>
    public string Name { get; init; } = "";
}

/// <summary>
/// Channel dependency analysis (DepGraph-style) on the IR. Every tensor's channels are described as a list of
/// segments of channel spaces; each node's own rule (<see cref="Node.ChannelRule"/>) says which spaces it starts,
/// merges (union-find), ties, lays side by side or fixes. This class only keeps the books.
/// </summary>
public sealed class ChannelGroups
{
    public List<ChannelGroup> Groups { get; } = new();
    /// <summary>Channel layout of each node's output, in group ids.</summary>
    public Dictionary<string, List<Segment>> Layout { get; } = new();
    public NetworkGraph Graph { get; }

    public IEnumerable<ChannelGroup> Prunable => Groups.Where(g => g.Prunable);

    private ChannelGroups(NetworkGraph graph) { Graph = graph; }

    private sealed class Builder : IDependencyBuilder
    {
        public readonly List<int> Parent = new(), Width = new(), Block = new();
        public readonly List<string> Origin = new();
        public readonly Dictionary<int, string> FixedWhy = new();
        public readonly List<(string Node, Role Role, int Space, int Offset)> Members = new();
        public string Current = "";

        public int Find(int s) { while (Parent[s] != s) { Parent[s] = Parent[Parent[s]]; s = Parent[s]; } return s; }

        public List<Segment> NewSpace(int width)
        {
            Parent.Add(Parent.Count); Width.Add(width); Block.Add(1); Origin.Add(Current);
            return new() { new Segment(Parent.Count - 1, 0, width) };
        }

        public void Member(Role role, IEnumerable<Segment> channels)
        {
            foreach (var s in channels) Members.Add((Current, role, s.Space, s.Offset));
        }

        public void Merge(IReadOnlyList<Segment> a, IReadOnlyList<Segment> b)
        {
            for (int k = 0; k < a.Count; k++)
            {
                int x = Find(a[k].Space), y = Find(b[k].Space);
                if (x == y) continue;
                Parent[y] = x;
                Block[x] = Lcm(Block[x], Block[y]);
            }
        }

        public void Fix(IEnumerable<Segment> channels, string why)
        {
            foreach (var s in channels) FixedWhy.TryAdd(s.Space, why);
        }

        public void Blocks(IEnumerable<Segment> channels, int block)
        {
            if (block <= 1) return;
            foreach (var s in channels)
            {
                // a block must not straddle two spaces of a concatenation
                if (s.Offset % block != 0 || s.Length % block != 0)
                    Fix(new[] { s }, $"groups of {block} channels in '{Current}' straddle its inputs");
                else { int r = Find(s.Space); Block[r] = Lcm(Block[r], block); }
            }
        }

        public bool Aligned(IReadOnlyList<Segment> a, IReadOnlyList<Segment> b) =>
            a.Count == b.Count && a.Zip(b).All(p => p.First.Length == p.Second.Length);

        private static int Lcm(int a, int b)
        {
            int x = a, y = b;
            while (y != 0) (x, y) = (y, x % y);
            return a / x * b;
        }
    }

    public static ChannelGroups Analyze(NetworkGraph graph)
    {
        graph.Validate();
        var b = new Builder();
        var layouts = new Dictionary<string, List<Segment>>();
        foreach (var n in graph.TopologicalOrder())
        {
            b.Current = n.Name;
            layouts[n.Name] = n.ChannelRule(b, n.Inputs.Select(i => layouts[i]).ToList());
        }

        var result = new ChannelGroups(graph);
        var idOf = new Dictionary<int, int>();
        int GroupOf(int space)
        {
            int root = b.Find(space);
            if (!idOf.TryGetValue(root, out var id))
            {
                id = result.Groups.Count;
                idOf[root] = id;
                int width = b.Width[root], block = b.Block[root];
                var g = new ChannelGroup { Id = id, Width = width, Block = width % block == 0 ? block : 1, Name = b.Origin[root] };
                if (width % block != 0) { g.Prunable = false; g.ProtectedBecause = $"groups of {block} channels do not divide {width}"; }
                result.Groups.Add(g);
            }
            return id;
        }
        foreach (var (space, why) in b.FixedWhy)
        {
            var g = result.Groups[GroupOf(space)];
            if (g.Prunable) { g.Prunable = false; g.ProtectedBecause = why; }
        }
        foreach (var (node, role, space, offset) in b.Members)
            result.Groups[GroupOf(space)].Members.Add(new Member(node, role, offset));
        foreach (var (name, layout) in layouts)
            result.Layout[name] = layout.Select(s => s with { Space = GroupOf(s.Space) }).ToList();
        return result;
    }

    /// <summary>Channel indices of a node's input (or output) tensor kept when each group keeps <paramref name="keep"/>.</summary>
    public static int[] KeptIndices(IReadOnlyList<Segment> layout, IReadOnlyDictionary<int, int[]> keep)
    {
        var idx = new List<int>();
        foreach (var s in layout)
        {
            if (keep.TryGetValue(s.Space, out var k)) idx.AddRange(k.Select(i => s.Offset + i));
            else idx.AddRange(Enumerable.Range(s.Offset, s.Length));
        }
        return idx.ToArray();
    }
}
