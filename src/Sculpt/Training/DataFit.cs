using Sculpt.Data;
using Sculpt.Runtime;

namespace Sculpt.Training;

/// <summary>What a model is asked to do with a dataset: the uses differ in how strictly the labels must agree.</summary>
public enum DataUse
{
    /// <summary>`train --init`: the data defines the task; the model's label names are replaced by the data's.</summary>
    Retrain,
    /// <summary>`prune`: fine-tuned to keep doing what it does, so the labels it names must be the data's.</summary>
    Prune,
    /// <summary>`eval`: every label the model segments is scored, so the data must have exactly those.</summary>
    Score,
}

/// <summary>
/// The one rule for "this data fits this model", shared by train --init, prune and eval: before it, the three had
/// written out three different checks, and an imported model that pruned on a folder was refused by eval on that
/// same folder (its placeholder names differed from the folder's). Sizes are not compared: every reader resamples
/// frames to the model's input except train --init's, which checks them itself.
/// </summary>
public static class DataFit
{
    /// <summary>
    /// Refuses (DatasetException naming the folder) colour frames for a model of another channel count, more labels
    /// than the model segments, fewer for scoring, and other label names where the model names its own. Returns a
    /// warning where fewer labels train (the classes the data lacks are trained towards absence), else null.
    /// </summary>
    public static string? Check(SegmentationDataset ds, TaskInfo task, DataUse use)
    {
        // grey frames feed a model of any channel count (in every channel), as EchoNet feeds its grey videos to DeepLabV3
        if (ds.Channels != 1 && ds.Channels != task.InputChannels)
            throw new DatasetException($"{ds.Source}: {ds.Channels}-channel frames for a {task.InputChannels}-channel model");
        string counts = $"{ds.Labels.Count} labels {List(ds.Labels)}, the model segments {task.Labels.Count} {List(task.Labels)}";
        if (ds.Labels.Count > task.Labels.Count || (use == DataUse.Score && ds.Labels.Count < task.Labels.Count))
            throw new DatasetException($"{ds.Source}: {counts}");
        if (use != DataUse.Retrain)
        {
            int differs = Enumerable.Range(0, ds.Labels.Count).FirstOrDefault(i => !Agree(task, i, ds.Labels[i]), -1);
            if (differs >= 0)
                throw new DatasetException($"{ds.Source}: label {differs} is '{ds.Labels[differs]}', "
                    + $"the model's is '{task.Labels[differs]}' ({counts}); name the model's labels with sculpt import --labels");
        }
        return ds.Labels.Count < task.Labels.Count
            ? $"{ds.Source}: {counts}; the classes the data lacks are trained towards absence" : null;
    }

    /// <summary>The labels of a model retrained on <paramref name="ds"/>: the data's, then the model's for the classes it lacks.</summary>
    public static List<string> RetrainedLabels(SegmentationDataset ds, TaskInfo task) =>
        ds.Labels.Concat(task.Labels.Skip(ds.Labels.Count)).ToList();

    /// <summary>
    /// Label 0 is background whatever either side calls it; elsewhere the names must be equal unless the model's is a
    /// placeholder, a name given for want of one (an import without --labels: "class1", "class2", …).
    /// </summary>
    private static bool Agree(TaskInfo task, int index, string dataName) =>
        index == 0 || task.Labels[index] == dataName || task.Labels[index] == TaskInfo.DefaultLabels(task.Labels.Count)[index];

    private static string List(IEnumerable<string> names) => $"[{string.Join(", ", names)}]";
}
