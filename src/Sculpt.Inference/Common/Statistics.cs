namespace Sculpt.Common;

/// <summary>Summary statistics every layer reports with: percentiles of timings, bootstrap intervals of scores.</summary>
public static class Statistics
{
    /// <summary>The <paramref name="q"/>-th percentile (0–100), linear between closest ranks; NaN for no values.</summary>
    public static double Percentile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        double pos = q / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>Mean with a percentile bootstrap 95% confidence interval (deterministic for a seed).</summary>
    public static (double Mean, double Lo, double Hi) MeanCi(IReadOnlyList<double> values, int seed = 0, int resamples = 2000)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length == 0) return (double.NaN, double.NaN, double.NaN);
        double mean = v.Average();
        if (v.Length == 1) return (mean, mean, mean);
        var r = new Random(seed);
        var means = new double[resamples];
        for (int k = 0; k < resamples; k++)
        {
            double s = 0;
            for (int i = 0; i < v.Length; i++) s += v[r.Next(v.Length)];
            means[k] = s / v.Length;
        }
        return (mean, Percentile(means, 2.5), Percentile(means, 97.5));
    }
}
