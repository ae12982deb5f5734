using System.Text;

namespace Sculpt.Onnx;

/// <summary>Minimal protocol-buffers encoder (wire types 0, 2, 5), enough to write ONNX models.</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    public byte[] ToArray() => _s.ToArray();

    private void Varint(ulong v)
    {
        while (v >= 0x80) { _s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        _s.WriteByte((byte)v);
    }

    private void Tag(int field, int wire) => Varint((ulong)((field << 3) | wire));

    public ProtoWriter Int(int field, long v) { Tag(field, 0); Varint((ulong)v); return this; }
    public ProtoWriter Float(int field, float v) { Tag(field, 5); _s.Write(BitConverter.GetBytes(v)); return this; }
    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> v) { Tag(field, 2); Varint((ulong)v.Length); _s.Write(v); return this; }
    public ProtoWriter String(int field, string v) => Bytes(field, Encoding.UTF8.GetBytes(v));
    public ProtoWriter Message(int field, ProtoWriter m) => Bytes(field, m.ToArray());

    /// <summary>Packed repeated int64.</summary>
    public ProtoWriter Ints(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values) inner.Varint((ulong)v);
        return Bytes(field, inner.ToArray());
    }
}
