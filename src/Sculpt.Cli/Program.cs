using System.Globalization;
using Sculpt.Cli;
using Sculpt.Cli.Commands;
using Sculpt.Data;
using Sculpt.Graph;

return CliMain.Run(args);

namespace Sculpt.Cli
{
    public static class CliMain
    {
        private static readonly Dictionary<string, (string Summary, Func<string[], int> Run, string Help)> Commands = new()
        {
            ["demo"] = ("the paper's experiment on synthetic echo: data, dense U-Net, pruning sweep to 1148×, ONNX, benchmark, report", DemoCommand.Run, DemoCommand.Help),
            ["synth"] = ("synthetic apical-four-chamber echocardiography (images, masks, videos)", SynthCommand.Run, SynthCommand.Help),
            ["data"] = ("info|export: what a dataset folder holds; write image/mask/overlay PNGs", DataCommand.Run, DataCommand.Help),
            ["train"] = ("train a dense model", TrainCommand.Run, TrainCommand.Help),
            ["eval"] = ("Dice, IoU, HD95 with bootstrap confidence intervals", EvalCommand.Run, EvalCommand.Help),
            ["prune"] = ("structured pruning to a compression / parameter / MAC target", PruneCommand.Run, PruneCommand.Help),
            ["import"] = ("a PyTorch checkpoint (zip or legacy torch.save) or an ONNX CNN as a Sculpt model", ImportCommand.Run, ImportCommand.Help),
            ["export"] = ("ONNX export (batch norm folded, dynamic batch) checked in ONNX Runtime", ExportCommand.Run, ExportCommand.Help),
            ["segment"] = ("masks and overlays for images, folders, videos (LV area, ED/ES, EF) or raw .npy tensors", SegmentCommand.Run, SegmentCommand.Help),
            ["bench"] = ("CPU latency/throughput (ORT, TorchSharp), GFLOP/s vs measured peak, dense vs pruned", BenchCommand.Run, BenchCommand.Help),
            ["inspect"] = ("layers, widths, parameters, MACs", InspectCommand.Run, InspectCommand.Help),
            ["report"] = ("one self-contained HTML page with the plots of a demo run", ReportCommand.Run, ReportCommand.Help),
        };

        public static int Run(string[] args)
        {
            // numbers in files, JSON, tables and arguments are written and read with '.', whatever the machine's
            // culture (a de-DE shell would otherwise print 0,5 into CSV and read --lr 0.5 as 5); restored after,
            // because tests and embedding hosts call Run in their own process
            using var invariant = Common.InvariantCultureScope.Enter();
            return RunInvariant(args);
        }

        private static int RunInvariant(string[] args)
        {
            if (args is ["--version"]) { Console.WriteLine($"sculpt {Sculpt.Common.SculptVersion.Text}"); return 0; }
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                Console.WriteLine("sculpt — sculpt over-sized segmentation models into small, fast ones\n\n"
                    + "usage: sculpt <command> [options]   (sculpt <command> --help for details; sculpt --version)\n");
                foreach (var (name, c) in Commands) Console.WriteLine($"  {name,-9} {c.Summary}");
                return args.Length == 0 ? 2 : 0;
            }
            if (!Commands.TryGetValue(args[0], out var cmd))
            {
                Console.Error.WriteLine($"sculpt: unknown command '{args[0]}' (see sculpt --help)");
                return 2;
            }
            var rest = args[1..];
            if (Environment.GetEnvironmentVariable("SCULPT_GC_STRESS") == "1")
            {
                // a developer's check for TorchSharp's finalizer race (README): collect garbage every millisecond
                new Thread(() => { while (true) { GC.Collect(); GC.WaitForPendingFinalizers(); Thread.Sleep(1); } })
                    { IsBackground = true }.Start();
            }
            if (rest.Contains("--help") || rest.Contains("-h")) { Console.WriteLine(cmd.Help.Trim()); return 0; }
            try
            {
                return cmd.Run(rest);
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"sculpt {args[0]}: {OneLine(e.Message)} (see sculpt {args[0]} --help)");
                return 2;
            }
            catch (Exception e) when (e is Sculpt.Pruning.PruneException or DatasetException or GraphException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"sculpt {args[0]}: error: {OneLine(e.Message)}");
                return 1;
            }
            catch (Exception e)
            {
                // a net, not the fix: every reader raises its own clear error; this keeps a batch job's log to one line
                Console.Error.WriteLine($"sculpt {args[0]}: internal error ({e.GetType().Name}): {OneLine(e.Message)}");
                // the one line keeps batch logs readable; SCULPT_TRACE=1 adds where it happened, for a bug report
                if (Environment.GetEnvironmentVariable("SCULPT_TRACE") == "1") Console.Error.WriteLine(e.ToString());
                return 1;
            }
        }

        private static string OneLine(string message) => Sculpt.Common.Messages.OneLine(message).TrimEnd();
    }
}
