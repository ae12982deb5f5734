using System.Globalization;
using System.Text;
using Sculpt.Data;
using Sculpt.Runtime;
using static TorchSharp.torch;

namespace Sculpt.Training;

public sealed record CaseResult(string Id, int Label, CaseMetrics Metrics, double? SpacingMm);

public sealed record MetricSummary(string Label, int Cases, double Dice, double DiceLo, double DiceHi, double IoU, double IoULo, double IoUHi,
    double Hd95Px, double Hd95Lo, double Hd95Hi, int Hd95Undefined, double? Hd95Mm);

/// <summary>
/// A model scored on a set of frames: metrics per case and foreground label, their summary with 95% bootstrap CIs,
/// and, for data with cardiac phases, Dice pooled over every pixel of each phase (EchoNet-Dynamic's definition).
/// </summary>
public sealed record Evaluation(IReadOnlyList<CaseResult> Cases, IReadOnlyList<MetricSummary> Summary,
    IReadOnlyDictionary<string, double> PooledDice)
{
    public double MeanDice => Summary.Average(s => s.Dice);

    /// <summary>id,label,dice,iou,hd95_px,hd95_mm: one row per case and label (HD95 empty where undefined).</summary>
    public string PerCaseCsv(IReadOnlyList<string> labels)
    {
        var csv = new StringBuilder("id,label,dice,iou,hd95_px,hd95_mm\n");
        foreach (var c in Cases)
        {
            var m = c.Metrics;
            string hd95Px = m.Hd95Defined ? m.Hd95Px.ToString("0.###", CultureInfo.InvariantCulture) : "";
            string hd95Mm = m.Hd95Defined && c.SpacingMm is { } mm ? (m.Hd95Px * mm).ToString("0.###", CultureInfo.InvariantCulture) : "";
            csv.Append(CultureInfo.InvariantCulture, $"{c.Id},{labels[c.Label]},{m.Dice:0.######},{m.IoU:0.######},")
                .Append(CultureInfo.InvariantCulture, $"{hd95Px},{hd95Mm}\n");
        }
        return csv.ToString();
    }
}

public static class Evaluator
{
    /// <summary>
    /// <paramref name="predictions"/> (label maps at the task's input size) scored against <paramref name="samples"/>;
    /// <paramref name="labels"/> name the summary's rows, <paramref name="seed"/> draws the bootstrap.
    /// </summary>
    public static Evaluation Evaluate(IReadOnlyList<Sample> samples, IReadOnlyList<byte[]> predictions, TaskInfo task,
        IReadOnlyList<string> labels, int seed = 0)
    {
        var cases = Score(samples, predictions, task.InputHeight, task.InputWidth, task.Labels.Count);
        var pooled = samples.Select(s => s.Phase).OfType<string>().Distinct().Order(StringComparer.Ordinal).ToDictionary(p => p, p =>
        {
            var idx = Enumerable.Range(0, samples.Count).Where(i => samples[i].Phase == p).ToList();
            return Metrics.PooledDice(idx.Select(i => predictions[i]), idx.Select(i => samples[i].Mask), 1);
        });
        return new Evaluation(cases, Summarize(cases, labels, seed), pooled);
    }

    /// <summary>
    /// The model in eval mode over the samples: their label maps; <paramref name="progress"/> hears (samples done,
    /// samples in all) after each batch.
    /// </summary>
    public static List<byte[]> Predict(GraphModule model, IReadOnlyList<Sample> samples, TaskInfo task, int batchSize = 16,
        Action<int, int>? progress = null)
    {
        model.eval();
        var result = new List<byte[]>(samples.Count);
        using var _ = no_grad();
        for (int start = 0; start < samples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = samples.Skip(start).Take(batchSize).ToList();
            var x = Batches.Images(batch, task.InputChannels, task.InputHeight, task.InputWidth, task.Normalization);
            result.AddRange(Batches.Predict(model.forward(x)));
            progress?.Invoke(result.Count, samples.Count);
        }
        return result;
    }

    public static List<CaseResult> Score(IReadOnlyList<Sample> samples, IReadOnlyList<byte[]> predictions, int h, int w, int labelCount)
    {
        var results = new List<CaseResult>();
        for (int i = 0; i < samples.Count; i++)
            for (int label = 1; label < labelCount; label++)
                results.Add(new CaseResult(samples[i].Id, label, Metrics.Compute(predictions[i], samples[i].Mask, h, w, (byte)label), samples[i].SpacingMm));
        return results;
    }

    public static List<MetricSummary> Summarize(IReadOnlyList<CaseResult> results, IReadOnlyList<string> labels, int seed = 0)
    {
        var list = new List<MetricSummary>();
        foreach (var group in results.GroupBy(r => r.Label).OrderBy(g => g.Key))
        {
            var d = Common.Statistics.MeanCi(group.Select(r => r.Metrics.Dice).ToList(), seed);
            var j = Common.Statistics.MeanCi(group.Select(r => r.Metrics.IoU).ToList(), seed);
            var h = Common.Statistics.MeanCi(group.Select(r => r.Metrics.Hd95Px).ToList(), seed);
            double? mm = group.All(r => r.SpacingMm.HasValue)
                ? group.Where(r => r.Metrics.Hd95Defined).Select(r => r.Metrics.Hd95Px * r.SpacingMm!.Value).DefaultIfEmpty(double.NaN).Average()
                : null;
            list.Add(new MetricSummary(labels[group.Key], group.Count(), d.Mean, d.Lo, d.Hi, j.Mean, j.Lo, j.Hi, h.Mean, h.Lo, h.Hi,
                group.Count(r => !r.Metrics.Hd95Defined), mm));
        }
        return list;
    }

    /// <summary>Mean Dice over cases and foreground labels — the model-selection metric.</summary>
    public static double MeanDice(GraphModule model, IReadOnlyList<Sample> samples, TaskInfo task)
    {
        var preds = Predict(model, samples, task);
        var scores = Score(samples, preds, task.InputHeight, task.InputWidth, task.Labels.Count);
        return scores.Average(s => s.Metrics.Dice);
    }
}
