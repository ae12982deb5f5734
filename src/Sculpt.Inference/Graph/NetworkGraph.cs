using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sculpt.Graph;

public sealed class GraphException(string message) : Exception(message);

/// <summary>Per-node result of shape inference and counting.</summary>
public sealed record NodeInfo(Node Node, IReadOnlyList<Shape> InputShapes, Shape Output, long Params, long Macs);

/// <summary>
/// The network as data: typed nodes connected by name. Construction does not validate; call
/// <see cref="Validate"/> (done by every loader) to get topological order, shapes and counts.
/// </summary>
public sealed class NetworkGraph
{
    public const int FormatVersion = 1;
    /// <summary>The most values one weight tensor may hold (a .NET array of float32).</summary>
    public const long MaxTensorElements = int.MaxValue / 4;
    public List<Node> Nodes { get; set; } = new();

    public NetworkGraph() { }
    public NetworkGraph(IEnumerable<Node> nodes) { Nodes = nodes.ToList(); }

    public Node this[string name] => Nodes.First(n => n.Name == name);
    public Node? Find(string name) => Nodes.FirstOrDefault(n => n.Name == name);
    public IEnumerable<InputNode> InputNodes => Nodes.OfType<InputNode>();
    public IEnumerable<OutputNode> OutputNodes => Nodes.OfType<OutputNode>();

    public NetworkGraph Clone() => new(Nodes.Select(n => n.CloneNode()));

    /// <summary>Nodes in an order where every input precedes its consumers; throws on unknown inputs or cycles.</summary>
    public List<Node> TopologicalOrder()
    {
        var byName = new Dictionary<string, Node>();
        foreach (var n in Nodes)
        {
            if (string.IsNullOrWhiteSpace(n.Name)) throw new GraphException($"a {n.Op} node has no name");
            if (!byName.TryAdd(n.Name, n)) throw new GraphException($"node name '{n.Name}' is used twice");
        }
        foreach (var n in Nodes)
            foreach (var i in n.Inputs)
                if (!byName.ContainsKey(i)) throw new GraphException($"node '{n.Name}' ({n.Op}): unknown input '{i}'");

        var state = new Dictionary<string, int>(); // 0 unvisited, 1 on stack, 2 done
        var order = new List<Node>(Nodes.Count);
        foreach (var root in Nodes)
        {
            if (state.GetValueOrDefault(root.Name) == 2) continue;
            // iterative DFS: deep ResNets would overflow a recursive one in debug builds
            var stack = new Stack<(Node node, int next)>();
            stack.Push((root, 0)); state[root.Name] = 1;
            while (stack.Count > 0)
            {
                var (node, next) = stack.Pop();
                if (next < node.Inputs.Count)
                {
                    stack.Push((node, next + 1));
                    var child = byName[node.Inputs[next]];
                    int s = state.GetValueOrDefault(child.Name);
                    if (s == 1) throw new GraphException($"cycle: node '{child.Name}' depends on itself through '{node.Name}'");
                    if (s == 0) { state[child.Name] = 1; stack.Push((child, 0)); }
                }
                else { state[node.Name] = 2; order.Add(node); }
            }
        }
        return order;
    }

    /// <summary>Full validation: names, arity, attributes, acyclicity, channel and spatial agreement.</summary>
    public List<NodeInfo> Validate()
    {
        if (!InputNodes.Any()) throw new GraphException("graph has no input node");
        if (!OutputNodes.Any()) throw new GraphException("graph has no output node");
        var order = TopologicalOrder();
        var shapes = new Dictionary<string, Shape>();
        var infos = new List<NodeInfo>(order.Count);
        foreach (var n in order)
        {
            var (min, max) = n.Arity;
            if (n.Inputs.Count < min || n.Inputs.Count > max)
                throw new GraphException($"node '{n.Name}' ({n.Op}): takes {(min == max ? min.ToString(System.Globalization.CultureInfo.InvariantCulture) : max == int.MaxValue ? $"at least {min}" : $"{min} to {max}")} input(s), has {n.Inputs.Count}");
            n.ValidateAttributes();
            var ins = n.Inputs.Select(i => shapes[i]).ToArray();
            var outShape = n.InferShape(ins);
            shapes[n.Name] = outShape;
            long parameters;
            try
            {
                parameters = n.ParameterCount();
                foreach (var w in n.Weights())
                    if (w.Count > MaxTensorElements)
                        throw new GraphException($"node '{n.Name}' ({n.Op}): tensor {w.Name} of {w.Count:N0} values is too large");
            }
            catch (OverflowException) { throw new GraphException($"node '{n.Name}' ({n.Op}): its weights are impossibly large"); }
            infos.Add(new NodeInfo(n, ins, outShape, parameters, n.MacCount(ins, outShape)));
        }
        return infos;
    }

    public long ParameterCount() => Validate().Sum(i => i.Params);
    public long MacCount() => Validate().Sum(i => i.Macs);
    /// <summary>Channels of the (single) output: the classes, or 1 for a binary task.</summary>
    public int OutputChannels() => Validate().Single(i => i.Node is OutputNode).Output.C;

    /// <summary>Graph with the input size set to <paramref name="height"/>×<paramref name="width"/> (counts depend on it).</summary>
    public NetworkGraph WithInputSize(int height, int width)
    {
        var g = Clone();
        foreach (var i in g.InputNodes) { i.Height = height; i.Width = width; }
        return g;
    }

    // ---------- JSON ----------
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        AllowOutOfOrderMetadataProperties = true,
        // undefined metrics (e.g. HD95 with an empty mask) are NaN; never let them crash a write
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private sealed class GraphDocument
    {
        public string Format { get; set; } = "sculpt-graph";
        public int Version { get; set; } = FormatVersion;
        public List<Node> Nodes { get; set; } = new();
    }

    public string ToJson() => JsonSerializer.Serialize(new GraphDocument { Nodes = Nodes }, JsonOptions);

    /// <summary>Parses and validates; every problem becomes a <see cref="GraphException"/> with one line of text.</summary>
    public static NetworkGraph FromJson(string json)
    {
        GraphDocument? doc;
        try { doc = JsonSerializer.Deserialize<GraphDocument>(json, JsonOptions); }
        catch (JsonException e)
        {
            var msg = e.Message.Split('\n')[0];
            if (e.InnerException is NotSupportedException) msg = "unknown or missing 'op' in a node";
            throw new GraphException($"invalid graph JSON: {msg}");
        }
        catch (NotSupportedException) { throw new GraphException("invalid graph JSON: unknown or missing 'op' in a node"); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new GraphException($"invalid graph JSON: {e.Message.Split('\n')[0]}");
        }
        if (doc is null || doc.Format != "sculpt-graph") throw new GraphException("invalid graph JSON: not a sculpt-graph document");
        if (doc.Version > FormatVersion)
            throw new GraphException($"graph format version {doc.Version} is newer than this Sculpt ({FormatVersion})");
        if (doc.Nodes is null || doc.Nodes.Any(n => n is null)) throw new GraphException("invalid graph JSON: null node");
        if (doc.Nodes.FirstOrDefault(n => n.Inputs is null || n.Inputs.Any(i => i is null)) is { } bad)
            throw new GraphException($"invalid graph JSON: node '{bad.Name}' has null inputs");
        var g = new NetworkGraph(doc.Nodes);
        g.Validate();
        return g;
    }
}
