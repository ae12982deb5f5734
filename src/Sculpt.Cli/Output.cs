using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;

namespace Sculpt.Cli;

public static class Output
{
    public static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, ISet<int>? leftAligned = null)
    {
        var all = new List<IReadOnlyList<string>> { header };
        all.AddRange(rows);
        var widths = header.Select((_, c) => all.Max(r => c < r.Count ? r[c].Length : 0)).ToArray();
        var sb = new StringBuilder();
        void Row(IReadOnlyList<string> r)
        {
            for (int c = 0; c < header.Count; c++)
            {
                var cell = c < r.Count ? r[c] : "";
                bool left = leftAligned?.Contains(c) ?? c == 0;
                sb.Append(left ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]));
                if (c < header.Count - 1) sb.Append("  ");
            }
            sb.Append('\n');
        }
        Row(header);
        sb.Append(string.Join("  ", widths.Select(w => new string('-', w)))).Append('\n');
        foreach (var r in all.Skip(1)) Row(r);
        return sb.ToString();
    }

    public static string Count(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.00", Inv) + "G",
        >= 1_000_000 => (n / 1e6).ToString("0.00", Inv) + "M",
        >= 10_000 => (n / 1e3).ToString("0.0", Inv) + "K",
        _ => n.ToString(Inv),
    };

    public static string F(double v, string format = "0.0000") => double.IsNaN(v) ? "n/a" : v.ToString(format, Inv);

    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public static void Json(JsonNode node) => Console.Out.WriteLine(node.ToJsonString(Indented));

    /// <summary>A JSON number, or null for NaN/∞ (undefined metrics).</summary>
    public static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    public static string Duration(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";
}

/// <summary>
/// A single updating status line on stderr; when stderr is redirected, plain lines: every milestone (forced update)
/// and at most one other every 30 s. Shown with --json too: the JSON goes to stdout, and a long job's log should
/// still say where it is.
/// </summary>
public sealed class ProgressLine
{
    private readonly Stopwatch _throttle = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private int _lastLength;

    public void Update(string text, bool force = false)
    {
        if (!_interactive)
        {
            // a log file gets whole lines: every milestone, and otherwise one line every 30 s so that a
            // background run's log shows it is alive (a DeepLab epoch on 2 cores takes minutes)
            if (!force && _throttle.Elapsed.TotalSeconds < 30) return;
            _throttle.Restart();
            Console.Error.WriteLine(text);
            return;
        }
        if (!force && _throttle.ElapsedMilliseconds < 200) return;
        _throttle.Restart();
        Console.Error.Write("\r" + text.PadRight(_lastLength));
        _lastLength = text.Length;
    }

    public void Done(string? text = null)
    {
        if (_interactive && text == null && _lastLength == 0) return; // nothing was shown: no empty line either
        if (_interactive) { Console.Error.Write("\r" + (text ?? "").PadRight(_lastLength) + "\n"); _lastLength = 0; }
        else if (text != null) Console.Error.WriteLine(text);
    }

    /// <summary>A (done, total) callback that shows "LABEL: done/total[ UNIT] [bar] ETA …" on this line.</summary>
    public Action<int, int> Counter(string label, string unit = "")
    {
        var clock = Stopwatch.StartNew();
        return (done, total) =>
        {
            var eta = done > 0 ? TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / done * (total - done)) : TimeSpan.Zero;
            Update($"{label}: {done:N0}/{total:N0}{(unit.Length > 0 ? " " + unit : "")} {Bar((double)done / Math.Max(1, total))} "
                + $"ETA {Output.Duration(eta)}");
        };
    }

    public static string Bar(double fraction, int width = 24)
    {
        int filled = (int)Math.Round(Math.Clamp(fraction, 0, 1) * width);
        return "[" + new string('#', filled) + new string('.', width - filled) + "]";
    }
}

/// <summary>Datasets read with a progress line: a release of thousands of videos takes minutes to decode.</summary>
public static class DataLoading
{
    /// <summary>
    /// <see cref="SegmentationDataset.Load"/> showing "reading DIR: n/N … ETA" while it reads; nothing for a quick
    /// read (the line's throttle shows the first update after 200 ms on a terminal, 30 s in a log). The dataset's
    /// warnings (items skipped, frames without a tracing) go to stderr here, so that every command shows them.
    /// </summary>
    public static SegmentationDataset Load(string dir, int? height = null, int? width = null, bool lenient = false)
    {
        var line = new ProgressLine();
        var ds = SegmentationDataset.Load(dir, height, width, lenient, line.Counter($"reading {dir}"));
        line.Done();
        foreach (var w in ds.Warnings) Console.Error.WriteLine($"warning: {w}");
        return ds;
    }
}
