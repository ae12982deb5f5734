using System.Buffers.Binary;
using System.Text;

namespace Sculpt.Onnx;

/// <summary>Protocol-buffer fields of one message, by field number, in file order.</summary>
internal sealed class ProtoMessage
{
    private readonly List<(int Field, int Wire, ulong Scalar, ReadOnlyMemory<byte> Bytes)> _fields = new();

    public ProtoMessage(ReadOnlyMemory<byte> data, string source)
    {
        var s = data.Span;
        int at = 0;
        ulong Varint(ReadOnlySpan<byte> b)
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (at >= b.Length || shift > 63) throw new InvalidDataException($"{source}: truncated or malformed protobuf");
                byte x = b[at++];
                v |= (ulong)(x & 0x7f) << shift;
                if (x < 0x80) return v;
            }
        }
        while (at < s.Length)
        {
            ulong key = Varint(s);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: _fields.Add((field, 0, Varint(s), default)); break;
                case 1: if (at + 8 > s.Length) throw Truncated(source); _fields.Add((field, 1, BinaryPrimitives.ReadUInt64LittleEndian(s[at..]), default)); at += 8; break;
                case 5: if (at + 4 > s.Length) throw Truncated(source); _fields.Add((field, 5, BinaryPrimitives.ReadUInt32LittleEndian(s[at..]), default)); at += 4; break;
                case 2:
                {
                    long len = (long)Varint(s);
                    if (len < 0 || at + len > s.Length) throw Truncated(source);
                    _fields.Add((field, 2, 0, data.Slice(at, (int)len)));
                    at += (int)len;
                    break;
                }
                default: throw new InvalidDataException($"{source}: malformed protobuf (wire type {wire})");
            }
        }
    }

    private static InvalidDataException Truncated(string source) => new($"{source}: truncated protobuf");

    public IEnumerable<ReadOnlyMemory<byte>> Bytes(int field) => _fields.Where(f => f.Field == field && f.Wire == 2).Select(f => f.Bytes);
    public IEnumerable<string> Strings(int field) => Bytes(field).Select(b => Encoding.UTF8.GetString(b.Span));
    public string String(int field) => Strings(field).LastOrDefault() ?? "";
    public long Int(int field, long fallback = 0) => _fields.Where(f => f.Field == field && f.Wire == 0).Select(f => (long)f.Scalar).DefaultIfEmpty(fallback).Last();
    public float Float(int field) => _fields.Where(f => f.Field == field && f.Wire == 5).Select(f => BitConverter.UInt32BitsToSingle((uint)f.Scalar)).LastOrDefault();

    /// <summary>Repeated varints, packed or not.</summary>
    public List<long> Ints(int field)
    {
        var list = new List<long>();
        foreach (var f in _fields.Where(f => f.Field == field))
        {
            if (f.Wire == 0) { list.Add((long)f.Scalar); continue; }
            if (f.Wire != 2) continue;
            var packed = new ProtoPacked(f.Bytes.Span);
            while (packed.More) list.Add((long)packed.Varint());
        }
        return list;
    }

    /// <summary>Repeated floats, packed or not.</summary>
    public List<float> Floats(int field)
    {
        var list = new List<float>();
        foreach (var f in _fields.Where(f => f.Field == field))
        {
            if (f.Wire == 5) list.Add(BitConverter.UInt32BitsToSingle((uint)f.Scalar));
            else if (f.Wire == 2) for (int i = 0; i + 4 <= f.Bytes.Length; i += 4) list.Add(BinaryPrimitives.ReadSingleLittleEndian(f.Bytes.Span[i..]));
        }
        return list;
    }

    /// <summary>Repeated doubles (packed).</summary>
    public List<double> Doubles(int field)
    {
        var list = new List<double>();
        foreach (var f in _fields.Where(f => f.Field == field))
        {
            if (f.Wire == 1) list.Add(BitConverter.UInt64BitsToDouble(f.Scalar));
            else if (f.Wire == 2) for (int i = 0; i + 8 <= f.Bytes.Length; i += 8) list.Add(BinaryPrimitives.ReadDoubleLittleEndian(f.Bytes.Span[i..]));
        }
        return list;
    }

    public IEnumerable<ProtoMessage> Messages(int field, string source) => Bytes(field).Select(b => new ProtoMessage(b, source));

    private ref struct ProtoPacked(ReadOnlySpan<byte> b)
    {
        private readonly ReadOnlySpan<byte> _b = b;
        private int _at;
        public bool More => _at < _b.Length;
        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; _at < _b.Length; shift += 7)
            {
                byte x = _b[_at++];
                v |= (ulong)(x & 0x7f) << shift;
                if (x < 0x80) break;
            }
            return v;
        }
    }
}

