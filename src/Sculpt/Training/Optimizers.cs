using Sculpt.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sculpt.Training;

/// <summary>
/// Adam and SGD written here rather than taken from TorchSharp: TorchSharp's step converts eps, betas and the
/// learning rate to Scalars nobody holds, and the GC can finalize one while libtorch reads it (see
/// <see cref="HeldScalars"/>). The arithmetic is PyTorch's single-tensor algorithm operation for operation, so the
/// numbers equal TorchSharp's own optimizers bit for bit (OptimizerTests). State saves as safetensors for resume.
/// </summary>
public abstract class Optimizer : IDisposable
{
    protected readonly Parameter[] Parameters;
    public double LearningRate { get; set; }
    public double WeightDecay { get; }
    /// <summary>Steps taken; part of the saved state (Adam's bias correction depends on it).</summary>
    public long Steps { get; protected set; }

    protected Optimizer(IEnumerable<Parameter> parameters, double learningRate, double weightDecay)
    {
        Parameters = parameters.ToArray();
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    public static Optimizer Create(string name, IEnumerable<Parameter> parameters, double learningRate, double weightDecay) => name switch
    {
        "adam" => new Adam(parameters, learningRate, weightDecay),
        "sgd" => new NesterovSgd(parameters, learningRate, weightDecay),
        _ => throw new ArgumentException($"unknown optimizer '{name}' (adam or sgd)"),
    };

    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    public void Step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Steps++;
        using var weightDecay = WeightDecay.ToScalar();
        for (int i = 0; i < Parameters.Length; i++)
        {
            var raw = Parameters[i].grad;
            if (raw is null) continue;
            var grad = WeightDecay != 0 ? raw.add(Parameters[i], weightDecay) : raw;
            Update(i, Parameters[i], grad);
        }
    }

    protected abstract void Update(int index, Parameter parameter, Tensor grad);

    /// <summary>The state tensors by name, for a checkpoint; the step count is saved beside them.</summary>
    public abstract WeightSet ExportState();
    public abstract void LoadState(WeightSet state, long steps, string source);

    protected static TensorData Data(Tensor t)
    {
        using var c = t.contiguous();
        return new TensorData(c.shape, c.data<float>().ToArray());
    }

    /// <summary>After any step every parameter has its state (Sculpt trains every parameter); nothing else may be there.</summary>
    protected void CheckKeys(WeightSet state, long steps, string[] names, string source)
    {
        if (steps < 0) throw new InvalidDataException($"{source}: {steps} optimizer steps");
        var expected = steps == 0 ? new HashSet<string>()
            : names.SelectMany(n => Enumerable.Range(0, Parameters.Length).Select(i => $"{n}.{i}")).ToHashSet();
        var unexpected = state.Keys.Where(k => !expected.Contains(k)).Take(3).ToList();
        if (unexpected.Count > 0) throw new InvalidDataException($"{source}: unexpected optimizer state {string.Join(", ", unexpected)}");
    }

    protected static Tensor Load(WeightSet state, string key, Parameter like, string source)
    {
        if (!state.TryGetValue(key, out var d)) throw new InvalidDataException($"{source}: optimizer state {key} missing");
        if (!d.SameShape(like.shape))
            throw new InvalidDataException($"{source}: optimizer state {key} has shape {d.ShapeText}, "
                + $"the parameter {string.Join("×", like.shape)}");
        return tensor(d.Data, d.Shape);
    }

    public virtual void Dispose() { }
}

/// <summary>Adam (Kingma &amp; Ba) with L2 weight decay added to the gradient, as torch.optim.Adam.</summary>
public sealed class Adam : Optimizer
{
    private const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; // torch.optim.Adam's defaults
    private readonly Tensor?[] _average;
    private readonly Tensor?[] _averageSquare;

    public Adam(IEnumerable<Parameter> parameters, double learningRate, double weightDecay) : base(parameters, learningRate, weightDecay)
    {
        _average = new Tensor?[Parameters.Length];
        _averageSquare = new Tensor?[Parameters.Length];
    }

    protected override void Update(int i, Parameter parameter, Tensor grad)
    {
        _average[i] ??= zeros_like(parameter).DetachFromDisposeScope();
        _averageSquare[i] ??= zeros_like(parameter).DetachFromDisposeScope();
        double correction1 = 1 - Math.Pow(beta1, Steps), correction2 = 1 - Math.Pow(beta2, Steps);
        using var b1 = beta1.ToScalar();
        using var keep1 = (1 - beta1).ToScalar();
        using var b2 = beta2.ToScalar();
        using var keep2 = (1 - beta2).ToScalar();
        using var sqrtCorrection2 = Math.Sqrt(correction2).ToScalar();
        using var epsilon = eps.ToScalar();
        using var stepSize = (-LearningRate / correction1).ToScalar();
        _average[i]!.mul_(b1).add_(grad, keep1);
        _averageSquare[i]!.mul_(b2).addcmul_(grad, grad, keep2);
        var denominator = _averageSquare[i]!.sqrt().div(sqrtCorrection2).add_(epsilon, HeldScalars.One);
        parameter.addcdiv_(_average[i]!, denominator, stepSize);
    }

    public override WeightSet ExportState()
    {
        var state = new WeightSet();
        for (int i = 0; i < Parameters.Length; i++)
        {
            if (_average[i] is null) continue;
            state[$"exp_avg.{i}"] = Data(_average[i]!);
            state[$"exp_avg_sq.{i}"] = Data(_averageSquare[i]!);
        }
        return state;
    }

    public override void LoadState(WeightSet state, long steps, string source)
    {
        CheckKeys(state, steps, new[] { "exp_avg", "exp_avg_sq" }, source);
        for (int i = 0; i < Parameters.Length && steps > 0; i++)
        {
            _average[i] = Load(state, $"exp_avg.{i}", Parameters[i], source);
            _averageSquare[i] = Load(state, $"exp_avg_sq.{i}", Parameters[i], source);
        }
        Steps = steps;
    }

    public override void Dispose()
    {
        foreach (var t in _average.Concat(_averageSquare)) t?.Dispose();
    }
}

/// <summary>SGD with momentum 0.9 and Nesterov's correction, as torch.optim.SGD(momentum=0.9, nesterov=True).</summary>
public sealed class NesterovSgd : Optimizer
{
    private const double momentum = 0.9;
    private readonly Tensor?[] _velocity;

    public NesterovSgd(IEnumerable<Parameter> parameters, double learningRate, double weightDecay)
        : base(parameters, learningRate, weightDecay) =>
        _velocity = new Tensor?[Parameters.Length];

    protected override void Update(int i, Parameter parameter, Tensor grad)
    {
        using var mu = momentum.ToScalar();
        using var step = (-LearningRate).ToScalar();
        if (_velocity[i] is null) _velocity[i] = grad.clone().detach().DetachFromDisposeScope();
        else _velocity[i]!.mul_(mu).add_(grad, HeldScalars.One);
        parameter.add_(grad.add(_velocity[i]!, mu), step);
    }

    public override WeightSet ExportState()
    {
        var state = new WeightSet();
        for (int i = 0; i < Parameters.Length; i++)
            if (_velocity[i] is { } v) state[$"momentum_buffer.{i}"] = Data(v);
        return state;
    }

    public override void LoadState(WeightSet state, long steps, string source)
    {
        CheckKeys(state, steps, new[] { "momentum_buffer" }, source);
        for (int i = 0; i < Parameters.Length && steps > 0; i++) _velocity[i] = Load(state, $"momentum_buffer.{i}", Parameters[i], source);
        Steps = steps;
    }

    public override void Dispose()
    {
        foreach (var t in _velocity) t?.Dispose();
    }
}
