// Segments one echo study (a multi-frame DICOM file, a video file or a folder of frame images) with a sculpted
// model and prints its beats and ejection fraction, as `sculpt segment` reports them.
using System.Globalization;
using Sculpt.Deploy;

if (args.Length is not (2 or 3) || (args.Length == 3 && !Enum.TryParse<EngineChoice>(args[2], ignoreCase: true, out _)))
{
    Console.Error.WriteLine("usage: EjectionFraction MODEL.sculpt|MODEL.onnx STUDY [auto|sculpt|ort]");
    return 2;
}
try
{
    var engine = args.Length == 3 ? Enum.Parse<EngineChoice>(args[2], ignoreCase: true) : EngineChoice.Auto;
    using var segmenter = await Segmenter.OpenAsync(args[0], new SegmenterOptions { Engine = engine });
    var cine = await segmenter.AnalyzeStudyAsync(args[1]);
    // Sculpt's own engine or ONNX Runtime, whichever ran this model faster on this machine when it was opened
    Console.WriteLine($"engine: {segmenter.EngineName}");
    Console.WriteLine($"frames: {cine.Masks.Count}");
    for (int k = 0; k < cine.Beats.Count; k++)
    {
        var beat = cine.Beats[k];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"beat {k + 1}: ED frame {beat.EndDiastole}, ES frame {beat.EndSystole}, EF {beat.EjectionFraction:0.0}%"));
    }
    // round-trip format: the number equals summary.json's ejection_fraction bit for bit
    Console.WriteLine(cine.EjectionFraction is { } ef
        ? string.Create(CultureInfo.InvariantCulture, $"ejection fraction: {ef:R}%")
        : "ejection fraction: n/a (no complete beat)");
    // with Sculpt's engine the process maps no native inference library at all
    if (File.Exists("/proc/self/maps"))
        Console.WriteLine($"ONNX Runtime loaded: {(File.ReadAllText("/proc/self/maps").Contains("libonnxruntime") ? "yes" : "no")}");
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
