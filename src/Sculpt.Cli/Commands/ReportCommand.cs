using Sculpt.Report;

namespace Sculpt.Cli.Commands;

public static class ReportCommand
{
    public const string Help = """
        sculpt report --run DIR [--out FILE.html]

        One self-contained HTML page (no external resources) about a run folder made by `sculpt demo`:
        Dice vs compression with the published reference point (1148×, ~4% loss), latency and throughput vs
        compression with the measured hardware peak, the Pareto front of Dice vs latency, the per-layer widths
        of the dense and the pruned model, example frames (image, truth, dense, pruned), and the commands,
        seeds, versions and machine. Anything missing from the run is listed on the page. Default FILE:
        DIR/report.html.

        example: sculpt report --run runs/demo --out runs/demo/report.html
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string>());
        var run = new RunFolder(a.Required("run"));
        var outPath = a.Get("out", run.ReportPath);
        a.EnsureAllUsed();
        if (!Directory.Exists(run.Root)) throw new InvalidDataException($"{run.Root}: run folder not found");
        HtmlReport.Write(run, outPath);
        Console.WriteLine($"report {outPath}");
        return 0;
    }
}
