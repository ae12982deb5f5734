using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Sculpt.Training;

/// <summary>
/// An exponential moving average of every weight and batch-norm statistic of a module, updated after each optimizer
/// step (Polyak averaging, as timm's ModelEmaV2 keeps it): validation and the kept weights can use the average instead
/// of the last step's weights, which for a network of a few thousand parameters trained at a large learning rate
/// move by a visible amount from one batch to the next. The decay warms up as min(d, (1 + t) / (10 + t)) over the
/// first steps so that the random initialisation does not linger in the average.
/// </summary>
public sealed class WeightAverage : IDisposable
{
    private readonly Dictionary<string, Tensor> _average = new(StringComparer.Ordinal);
    private readonly double _decay;
    private long _updates;

    public WeightAverage(GraphModule model, double decay, long updates = 0)
    {
        if (!(decay > 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), "the decay must be in (0, 1)");
        _decay = decay;
        _updates = updates;
        using var _ = no_grad();
        foreach (var key in model.TensorKeys) _average[key] = model.Tensor(key).detach().clone();
    }

    /// <summary>The decay used by the update after <paramref name="updates"/> earlier ones.</summary>
    public static double DecayAt(double decay, long updates) => Math.Min(decay, (1.0 + updates) / (10.0 + updates));

    public void Update(GraphModule model)
    {
        using var _ = no_grad();
        double decay = DecayAt(_decay, _updates);
        using var keep = decay.ToScalar();
        using var take = (1 - decay).ToScalar();
        foreach (var (key, average) in _average) average.mul_(keep).add_(model.Tensor(key), take); // a·d + x·(1 − d)
        _updates++;
    }

    /// <summary>Exchanges the module's values with the average; calling it again restores both.</summary>
    public void Swap(GraphModule model)
    {
        using var _ = no_grad();
        foreach (var (key, average) in _average)
        {
            var current = model.Tensor(key);
            using var held = current.clone();
            current.copy_(average);
            average.copy_(held);
        }
    }

    public WeightSet Export() => GraphModule.ToWeightSet(_average);

    /// <summary>Restores a saved average (resuming training); <paramref name="source"/> names it in errors.</summary>
    public void Load(GraphModule model, WeightSet weights, string source) => GraphModule.CopyInto(_average, model.Graph, weights, source);

    public void Dispose()
    {
        foreach (var t in _average.Values) t.Dispose();
        _average.Clear();
    }
}
