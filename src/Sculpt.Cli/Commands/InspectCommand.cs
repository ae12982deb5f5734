using System.Text.Json.Nodes;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

public static class InspectCommand
{
    public const string Help = """
        sculpt inspect --model MODEL.sculpt | --arch unet-classic|unet|unet-small [--size S] [--in-channels C] [--classes K] [--groups] [--json]

        Per-layer table (name, op, in/out channels, output shape, parameters, MACs) and totals. MACs count the
        multiply-accumulates of convolutions at the model's input size (or --size). --json gives params, macs
        and the layers. --groups lists the channel dependency groups (channels that must be pruned together):
        width, producers, consumers, and why a group is protected.

        example: sculpt inspect --arch unet-classic --size 112
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json", "groups" });
        var modelPath = a.Get("model");
        var arch = a.Get("arch");
        int? size = a.Has("size") ? a.Int("size", 112, 16, 8192) : null;
        int inCh = a.Int("in-channels", 1, 1, 64), classes = a.Int("classes", 1, 1, 255);
        bool json = a.Flag("json"), showGroups = a.Flag("groups");
        a.EnsureAllUsed();
        if ((modelPath == null) == (arch == null)) throw new UsageException("give exactly one of --model or --arch");
        var graph = modelPath != null ? ModelPackage.Load(modelPath).Graph : Architectures.Build(arch!, inCh, classes, size ?? 112);
        if (size.HasValue) graph = graph.WithInputSize(size.Value, size.Value);
        var infos = graph.Validate();
        if (showGroups) return Groups(graph, json);
        long parameters = infos.Sum(i => i.Params), macs = infos.Sum(i => i.Macs);
        var input = graph.InputNodes.First();
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["source"] = modelPath ?? arch, ["params"] = parameters, ["macs"] = macs,
                ["input"] = new JsonArray(input.Channels, input.Height, input.Width),
                ["layers"] = new JsonArray(infos.Select(i => (JsonNode)new JsonObject
                {
                    ["name"] = i.Node.Name, ["op"] = i.Node.Op,
                    ["in_channels"] = i.InputShapes.Count > 0 ? i.InputShapes[0].C : null, ["out_channels"] = i.Output.C,
                    ["out_shape"] = new JsonArray(i.Output.C, i.Output.H, i.Output.W), ["params"] = i.Params, ["macs"] = i.Macs,
                }).ToArray()),
            });
            return 0;
        }
        Console.Write(Output.Table(new[] { "name", "op", "in", "out", "output", "params", "MACs" },
            infos.Select(i => new[]
            {
                i.Node.Name, i.Node.Op, i.InputShapes.Count > 0 ? string.Join("+", i.InputShapes.Select(s => s.C)) : "", i.Output.C.ToString(),
                i.Output.ToString(), i.Params > 0 ? i.Params.ToString("N0", Output.Inv) : "", i.Macs > 0 ? i.Macs.ToString("N0", Output.Inv) : "",
            }), new HashSet<int> { 0, 1 }));
        Console.WriteLine($"\n{modelPath ?? arch}: {infos.Count} nodes, {parameters:N0} parameters ({Output.Count(parameters)}), {macs:N0} MACs ({Output.Count(macs)}) at {input.Channels}×{input.Height}×{input.Width}");
        return 0;
    }

    private static int Groups(NetworkGraph graph, bool json)
    {
        var groups = ChannelGroups.Analyze(graph);
        string Names(IEnumerable<Member> ms) => string.Join(", ", ms.Select(m => m.Offset > 0 ? $"{m.Node}@{m.Offset}" : m.Node));
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["groups"] = new JsonArray(groups.Groups.Select(g => (JsonNode)new JsonObject
                {
                    ["id"] = g.Id, ["name"] = g.Name, ["width"] = g.Width, ["prunable"] = g.Prunable, ["protected_because"] = g.ProtectedBecause,
                    ["producers"] = new JsonArray(g.Producers.Select(m => (JsonNode)m.Node).ToArray()),
                    ["consumers"] = new JsonArray(g.Consumers.Select(m => (JsonNode)new JsonObject { ["node"] = m.Node, ["offset"] = m.Offset }).ToArray()),
                    ["norms"] = new JsonArray(g.Members.Where(m => m.Role is Role.Norm or Role.Tied).Select(m => (JsonNode)m.Node).ToArray()),
                }).ToArray()),
            });
            return 0;
        }
        Console.Write(Output.Table(new[] { "group", "width", "prunable", "producers", "consumers (node@offset)", "norms / tied" },
            groups.Groups.Select(g => new[]
            {
                g.Name, g.Width.ToString(), g.Prunable ? "yes" : $"no ({g.ProtectedBecause})", Names(g.Producers), Names(g.Consumers),
                Names(g.Members.Where(m => m.Role is Role.Norm or Role.Tied)),
            }), new HashSet<int> { 0, 2, 3, 4, 5 }));
        Console.WriteLine($"\n{groups.Groups.Count} groups, {groups.Prunable.Count()} prunable, {groups.Prunable.Sum(g => g.Width)} prunable channels");
        return 0;
    }
}
