using ScottPlot;

namespace Sculpt.Clinical;

public static class AreaPlot
{
    /// <summary>LV area per frame with ED (red) and ES (blue) frames marked, as a PNG.</summary>
    public static void Save(string path, IReadOnlyList<double> area, IReadOnlyList<Beat> beats, string unit, string title)
    {
        var plot = new Plot();
        var xs = Enumerable.Range(0, area.Count).Select(i => (double)i).ToArray();
        var line = plot.Add.Scatter(xs, area.ToArray());
        line.LegendText = "LV area";
        if (beats.Count > 0)
        {
            var ed = plot.Add.Markers(beats.Select(b => (double)b.EndDiastole).ToArray(), beats.Select(b => area[b.EndDiastole]).ToArray(), MarkerShape.FilledCircle, 10, Colors.Red);
            ed.LegendText = "end-diastole";
            var es = plot.Add.Markers(beats.Select(b => (double)b.EndSystole).ToArray(), beats.Select(b => area[b.EndSystole]).ToArray(), MarkerShape.FilledSquare, 10, Colors.Blue);
            es.LegendText = "end-systole";
        }
        plot.XLabel("frame");
        plot.YLabel($"LV area ({unit})");
        plot.Title(title);
        plot.ShowLegend();
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileNameWithoutExtension(path)}.{Guid.NewGuid():N}.png");
        try
        {
            plot.SavePng(tmp, 900, 420);
            File.Move(tmp, path, true);
        }
        finally { if (File.Exists(tmp)) File.Delete(tmp); }
    }
}
