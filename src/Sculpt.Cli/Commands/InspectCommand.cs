using System.Text.Json.Nodes;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

public static class InspectCommand
{
    public const string Help = """
        sculpt inspect --model MODEL.sculpt | --arch unet-classic|unet|unet-small [--size S] [--in-channels C] [--classes K] [--json]

        Per-layer table (name, op, in/out channels, output shape, parameters, MACs) and totals. MACs count the
        multiply-accumulates of convolutions at the model's input size (or --size). --json gives params, macs
        and the layers.

        example: sculpt inspect --arch unet-classic --size 112
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json" });
        var modelPath = a.Get("model");
        var arch = a.Get("arch");
        int? size = a.Has("size") ? a.Int("size", 112) : null;
        int inCh = a.Int("in-channels", 1), classes = a.Int("classes", 1);
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        if ((modelPath == null) == (arch == null)) throw new UsageException("give exactly one of --model or --arch");
        var graph = modelPath != null ? ModelPackage.Load(modelPath).Graph : UNet.Build(UNet.Preset(arch!, inCh, classes, size ?? 112));
        if (size.HasValue) graph = graph.WithInputSize(size.Value, size.Value);
        var infos = graph.Validate();
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
}
