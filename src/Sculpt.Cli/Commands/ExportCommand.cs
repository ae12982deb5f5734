using System.Text.Json.Nodes;
using Sculpt.Onnx;
using Sculpt.Deploy;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class ExportCommand
{
    public const string Help = """
        sculpt export --model M.sculpt --onnx FILE.onnx [--json]

        ONNX (opset 17) for ONNX Runtime on CPU: batch norm folded into the preceding convolution, dynamic batch
        axis. Input "input": float32 [batch, C, H, W], intensities in [0,1] normalised as (x − mean)/std with the
        model's normalisation; output "logits": raw logits (binary: sigmoid > 0.5; multi-class: argmax). The task
        (labels, mode, input size, normalisation) is in the model's metadata_props (keys "sculpt.*").
        The export is checked by loading it in ONNX Runtime before the file is put in place.

        example: sculpt export --model small.sculpt --onnx small.onnx
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json" });
        var modelPath = a.Required("model");
        var onnxPath = a.Required("onnx");
        Args.RefuseOverwrite(onnxPath, modelPath);
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        var pkg = ModelPackage.Load(modelPath);
        var bytes = OnnxExport.Encode(pkg);
        var dir = Path.GetDirectoryName(Path.GetFullPath(onnxPath))!;
        Directory.CreateDirectory(dir);
        var check = Path.Combine(dir, $".{Path.GetFileName(onnxPath)}.{Guid.NewGuid():N}.check");
        try
        {
            File.WriteAllBytes(check, bytes);
            using (new OrtModel(check)) { }
        }
        finally { File.Delete(check); }
        AtomicFile.WriteAllBytes(onnxPath, bytes);
        if (json) Output.Json(new JsonObject { ["onnx"] = onnxPath, ["bytes"] = bytes.Length, ["params"] = pkg.Graph.ParameterCount(), ["opset"] = OnnxExport.Opset });
        else Console.WriteLine($"wrote {onnxPath} ({bytes.Length / 1024.0:0.0} KiB, opset {OnnxExport.Opset}, {pkg.Graph.ParameterCount():N0} parameters, batch norm folded)");
        return 0;
    }
}
