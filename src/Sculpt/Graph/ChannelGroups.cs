namespace Sculpt.Graph;

/// <summary>A run of consecutive channels of one tensor that all belong to one channel space.</summary>
public readonly record struct Segment(int Space, int Offset, int Length);

/// <summary>How a parameterised node touches a channel group.</summary>
public enum Role
{
    /// <summary>Conv/ConvTranspose producing the group: its output filters (and bias) are the group's channels.</summary>
    Producer,
    /// <summary>Conv/ConvTranspose reading the group at <see cref="Member.Offset"/> of its input channels.</summary>
    Consumer,
    /// <summary>BatchNorm whose channels at <see cref="Member.Offset"/> are the group's.</summary>
    Norm,
    /// <summary>Depthwise conv: its filters are tied one-to-one to the group's channels.</summary>
    Depthwise,
}

public sealed record Member(string Node, Role Role, int Offset);

/// <summary>Channels that must be removed together: one index space shared by every member.</summary>
public sealed class ChannelGroup
{
    public int Id { get; init; }
    public int Width { get; init; }
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
/// segments of channel spaces; convolutions start spaces, element-wise Add merges them (union-find),
/// Concat lays them side by side, depthwise convolutions tie input to output. Spaces that reach an input or
/// output node, or pass through a grouped (non-depthwise) convolution or an unaligned Add, are protected.
/// </summary>
public sealed class ChannelGroups
{
    public List<ChannelGroup> Groups { get; } = new();
    /// <summary>Channel layout of each node's output, in group ids.</summary>
    public Dictionary<string, List<Segment>> Layout { get; } = new();
    public NetworkGraph Graph { get; }

    public IEnumerable<ChannelGroup> Prunable => Groups.Where(g => g.Prunable);

    private ChannelGroups(NetworkGraph graph) { Graph = graph; }

    public static ChannelGroups Analyze(NetworkGraph graph)
    {
        graph.Validate();
        var order = graph.TopologicalOrder();
        var parent = new List<int>();
        var width = new List<int>();
        var origin = new List<string>();
        var protectedWhy = new Dictionary<int, string>();
        string currentNode = "";
        int NewSpace(int w) { parent.Add(parent.Count); width.Add(w); origin.Add(currentNode); return parent.Count - 1; }
        int Find(int s) { while (parent[s] != s) { parent[s] = parent[parent[s]]; s = parent[s]; } return s; }
        void Union(int a, int b) { a = Find(a); b = Find(b); if (a != b) parent[b] = a; }
        void Protect(IEnumerable<Segment> segs, string why) { foreach (var s in segs) protectedWhy.TryAdd(s.Space, why); }

        var layouts = new Dictionary<string, List<Segment>>();
        var raw = new List<(string Node, Role Role, int Space, int Offset)>();
        List<Segment> Single(int space, int w) => new() { new Segment(space, 0, w) };

        foreach (var n in order)
        {
            var ins = n.Inputs.Select(i => layouts[i]).ToList();
            currentNode = n.Name;
            List<Segment> outLayout;
            switch (n)
            {
                case InputNode inp:
                    outLayout = Single(NewSpace(inp.Channels), inp.Channels);
                    Protect(outLayout, $"input '{n.Name}'");
                    break;
                case Conv2dNode c when c.Groups == 1:
                    foreach (var s in ins[0]) raw.Add((n.Name, Role.Consumer, s.Space, s.Offset));
                    outLayout = Single(NewSpace(c.OutChannels), c.OutChannels);
                    raw.Add((n.Name, Role.Producer, outLayout[0].Space, 0));
                    break;
                case Conv2dNode c when c is not ConvTranspose2dNode && c.Groups == c.InChannels && c.OutChannels == c.InChannels:
                    outLayout = ins[0];
                    foreach (var s in ins[0]) raw.Add((n.Name, Role.Depthwise, s.Space, s.Offset));
                    break;
                case Conv2dNode c:
                    Protect(ins[0], $"grouped convolution '{n.Name}'");
                    outLayout = Single(NewSpace(c.OutChannels), c.OutChannels);
                    Protect(outLayout, $"grouped convolution '{n.Name}'");
                    raw.Add((n.Name, Role.Producer, outLayout[0].Space, 0));
                    foreach (var s in ins[0]) raw.Add((n.Name, Role.Consumer, s.Space, s.Offset));
                    break;
                case BatchNorm2dNode:
                    outLayout = ins[0];
                    foreach (var s in ins[0]) raw.Add((n.Name, Role.Norm, s.Space, s.Offset));
                    break;
                case AddNode:
                    outLayout = ins[0];
                    bool aligned = ins.All(l => l.Count == ins[0].Count && l.Zip(ins[0]).All(p => p.First.Length == p.Second.Length));
                    if (aligned) { foreach (var l in ins.Skip(1)) for (int k = 0; k < l.Count; k++) Union(ins[0][k].Space, l[k].Space); }
                    else foreach (var l in ins) Protect(l, $"unaligned add '{n.Name}'");
                    break;
                case ConcatNode:
                    outLayout = new List<Segment>();
                    int off = 0;
                    foreach (var l in ins) foreach (var s in l) { outLayout.Add(s with { Offset = off }); off += s.Length; }
                    break;
                case OutputNode:
                    outLayout = ins[0];
                    Protect(ins[0], $"output '{n.Name}'");
                    break;
                default: // channel-preserving ops: activations, pooling, upsampling, dropout, identity
                    outLayout = ins[0];
                    break;
            }
            layouts[n.Name] = outLayout;
        }

        var result = new ChannelGroups(graph);
        var idOf = new Dictionary<int, int>();
        int GroupOf(int space)
        {
            int root = Find(space);
            if (!idOf.TryGetValue(root, out var id))
            {
                id = result.Groups.Count;
                idOf[root] = id;
                result.Groups.Add(new ChannelGroup { Id = id, Width = width[root], Name = origin[root] });
            }
            return id;
        }
        foreach (var (space, why) in protectedWhy)
        {
            var g = result.Groups[GroupOf(space)];
            if (g.Prunable) { g.Prunable = false; g.ProtectedBecause = why; }
        }
        foreach (var (node, role, space, offset) in raw)
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
