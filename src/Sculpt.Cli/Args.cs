using System.Globalization;

namespace Sculpt.Cli;

public sealed class UsageException(string message) : Exception(message);

/// <summary>Minimal GNU-style options: --name value, --flag; unknown options are errors.</summary>
public sealed class Args
{
    private readonly Dictionary<string, string?> _values = new();
    private readonly HashSet<string> _used = new();
    private readonly HashSet<string> _missingValue = new();
    public List<string> Positional { get; } = new();

    public Args(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (!a.StartsWith("--")) { Positional.Add(a); continue; }
            var name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (!flags.Contains(name))
            {
                // an option followed by another option (or by nothing) has no value: refused when the command reads it,
                // so that an unknown flag (`--lenient` where the command has none) is reported as unknown instead of
                // taking the next option as its value
                if (i + 1 >= list.Count || list[i + 1].StartsWith("--")) _missingValue.Add(name);
                else value = list[++i];
            }
            _values[name] = value;
        }
    }

    public bool Has(string name) { _used.Add(name); return _values.ContainsKey(name); }
    public bool Flag(string name) => Has(name);

    public string? Get(string name)
    {
        _used.Add(name);
        return _missingValue.Contains(name) ? throw new UsageException($"option --{name} needs a value") : _values.GetValueOrDefault(name);
    }
    public string Required(string name) => Get(name) ?? throw new UsageException($"missing required option --{name}");
    public string Get(string name, string fallback) => Get(name) ?? fallback;

    /// <summary>One of a set of names, read by the library's own parser; an unknown name is a usage error.</summary>
    public T Choice<T>(string name, string fallback, Func<string, T> parse)
    {
        try { return parse(Get(name, fallback)); }
        catch (ArgumentException e) { throw new UsageException($"--{name}: {e.Message}"); }
    }

    public int Int(string name, int fallback)
    {
        var v = Get(name);
        if (v == null) return fallback;
        return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var r) ? r : throw new UsageException($"--{name} must be an integer, got '{v}'");
    }

    /// <summary>An integer option that must lie in [<paramref name="min"/>, <paramref name="max"/>] (a usage error otherwise).</summary>
    public int Int(string name, int fallback, int min, int max)
    {
        int v = Int(name, fallback);
        return v >= min && v <= max ? v : throw new UsageException($"--{name} must be {min} to {max}, got {v}");
    }

    public double Double(string name, double fallback)
    {
        var v = Get(name);
        if (v == null) return fallback;
        return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var r) ? r : throw new UsageException($"--{name} must be a number, got '{v}'");
    }

    /// <summary>
    /// A number option that must lie in [<paramref name="min"/>, <paramref name="max"/>], with an open end where
    /// <paramref name="aboveMin"/> or <paramref name="belowMax"/> (a rate of 0 trains nothing, a decay of 1 never
    /// moves); NaN and the infinities never do, so a bad value stops the command before it reads or writes anything.
    /// </summary>
    public double Double(string name, double fallback, double min, double max, bool aboveMin = false, bool belowMax = false)
    {
        double v = Double(name, fallback);
        if ((aboveMin ? v > min : v >= min) && (belowMax ? v < max : v <= max)) return v;
        var range = string.Create(CultureInfo.InvariantCulture, $"{(aboveMin ? "(" : "[")}{min}, {max}{(belowMax ? ")" : "]")}, got {v}");
        throw new UsageException($"--{name} must be in {range}");
    }

    /// <summary>A count option such as a parameter target: an integer, written with _ separators or as 1e6, in [min, max].</summary>
    public long? Long(string name, long min, long max)
    {
        var v = Get(name);
        if (v == null) return null;
        double value = long.TryParse(v.Replace("_", ""), NumberStyles.Integer, CultureInfo.InvariantCulture, out var whole) ? whole
            : double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Floor(d) ? d
            : throw new UsageException($"--{name} must be an integer, got '{v}'");
        return value >= min && value <= max ? (long)value
            : throw new UsageException(string.Create(CultureInfo.InvariantCulture, $"--{name} must be {min:N0} to {max:N0}, got {v}"));
    }

    /// <summary>A comma-separated list of integers, each in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public int[] Ints(string name, string fallback, int min, int max)
    {
        var text = Get(name, fallback);
        var error = new UsageException($"--{name} must be a comma-separated list of integers from {min} to {max}, got '{text}'");
        int Item(string item) =>
            int.TryParse(item, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max ? v : throw error;
        return text.Split(',').Select(Item).ToArray();
    }

    /// <summary>
    /// --input-size H,W: where an ONNX file leaves height and width dynamic, the size to read and run it at; refused
    /// unless the model is one (<paramref name="onnx"/>), since a package fixes its own.
    /// </summary>
    public (int Height, int Width)? InputSize(bool onnx)
    {
        if (Get("input-size") is not { } text) return null;
        if (!onnx)
            throw new UsageException("--input-size applies to an .onnx model (a package fixes its input size)");
        var parts = text.Split(',');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int h)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            || h < 1 || w < 1 || h > 8192 || w > 8192)
            throw new UsageException($"--input-size needs H,W between 1 and 8192, got '{Sculpt.Common.Messages.Quote(text)}'");
        return (h, w);
    }

    /// <summary>--threads T: libtorch intra-op threads for this process (0 or absent: libtorch's default, all cores).</summary>
    public int Threads()
    {
        int t = Int("threads", 0, 0, 1024);
        if (t > 0) { Sculpt.Runtime.TorchRuntime.Initialize(); TorchSharp.torch.set_num_threads(t); }
        return t;
    }

    /// <summary>--distill-loss K and --distill-weight W, shared by train (with --teacher) and prune (with --distill);
    /// <paramref name="enabledBy"/> names the option without which they mean nothing.</summary>
    public (string Loss, double Weight) Distillation(bool enabled, string enabledBy)
    {
        var loss = Get("distill-loss", "mse");
        double weight = Double("distill-weight", 1.0);
        if (!Sculpt.Training.Distillation.Kinds.Contains(loss))
            throw new UsageException($"--distill-loss must be one of {string.Join(", ", Sculpt.Training.Distillation.Kinds)}");
        if (!(weight >= 0) || double.IsInfinity(weight)) throw new UsageException("--distill-weight must be a finite number ≥ 0");
        if (!enabled && (Has("distill-loss") || Has("distill-weight")))
            throw new UsageException($"--distill-loss and --distill-weight need {enabledBy}");
        return (loss, weight);
    }

    /// <summary>Rejects options the command did not ask about, so typos never pass silently.</summary>
    public void EnsureAllUsed()
    {
        var unknown = _values.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"unknown option --{unknown[0]}");
        if (Positional.Count > 0) throw new UsageException($"unexpected argument '{Positional[0]}'");
    }

    /// <summary>Refuses an output that is one of the inputs (it would be overwritten while being read).</summary>
    public static void RefuseOverwrite(string output, params string?[] inputs)
    {
        var target = Path.GetFullPath(output);
        foreach (var input in inputs)
            if (input is not null && string.Equals(Path.GetFullPath(input), target, StringComparison.Ordinal))
                throw new UsageException($"the output {output} is also an input; choose another path");
    }
}
