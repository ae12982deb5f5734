namespace Sculpt.Runtime;

/// <summary>A float32 tensor held as plain managed data (row-major), independent of libtorch.</summary>
public sealed class TensorData
{
    public long[] Shape { get; }
    public float[] Data { get; }

    public TensorData(long[] shape, float[] data)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (n != data.Length) throw new ArgumentException($"shape [{string.Join(",", shape)}] needs {n} values, got {data.Length}");
        Shape = shape;
        Data = data;
    }

    public long Count => Data.Length;
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
    public bool SameShape(long[] other) => Shape.SequenceEqual(other);
}

/// <summary>Named tensors of one model, keyed "&lt;node&gt;.&lt;param&gt;" (PyTorch state_dict style).</summary>
public sealed class WeightSet : SortedDictionary<string, TensorData>
{
    public WeightSet() : base(StringComparer.Ordinal) { }
}
