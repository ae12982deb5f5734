using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sculpt.Runtime;

/// <summary>
/// The safetensors format (Hugging Face): u64 little-endian header length, a JSON header mapping names to
/// dtype/shape/data_offsets, then the raw little-endian data. We write F32; we read F32, F16, BF16, F64.
/// </summary>
public static class Safetensors
{
    public static byte[] Write(WeightSet weights)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, t) in weights)
        {
            long bytes = t.Count * 4;
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8; // the spec allows trailing spaces; aligning helps mmap readers
        var headerLen = headerBytes.Length + pad;
        var result = new byte[8 + headerLen + offset];
        BitConverter.TryWriteBytes(result.AsSpan(0, 8), (ulong)headerLen);
        headerBytes.CopyTo(result, 8);
        for (int i = 0; i < pad; i++) result[8 + headerBytes.Length + i] = (byte)' ';
        long pos = 8 + headerLen;
        foreach (var t in weights.Values)
        {
            var span = System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan());
            span.CopyTo(result.AsSpan((int)pos));
            pos += span.Length;
        }
        return result;
    }

    /// <summary>Largest header accepted: names, dtypes, shapes and offsets of a few thousand tensors.</summary>
    public const int MaxHeaderBytes = 100 << 20;

    /// <summary>
    /// Reads to the format's specification, strictly: a JSON object of {dtype, shape, data_offsets} entries, every
    /// field of its type, offsets within the data, tensors contiguous and covering the data without holes or
    /// overlaps (as the specification requires), and all sizes computed with checked arithmetic.
    /// </summary>
    public static WeightSet Read(byte[] bytes, string source)
    {
        InvalidDataException Bad(string what) => new($"{source}: {what}");
        if (bytes.Length < 8) throw Bad("safetensors data is truncated");
        ulong headerLen = BitConverter.ToUInt64(bytes, 0);
        if (headerLen > (ulong)(bytes.Length - 8) || headerLen > MaxHeaderBytes)
            throw Bad($"safetensors header length {headerLen} exceeds the data");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLen)) as JsonObject
                ?? throw Bad("safetensors header is not a JSON object");
            _ = header.Count; // duplicate names surface here
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            throw Bad("safetensors header is not valid JSON");
        }
        long dataStart = 8 + (long)headerLen, dataLength = bytes.Length - dataStart;
        var result = new WeightSet();
        var spans = new List<(long Begin, long End, string Name)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            if (node is not JsonObject entry) throw Bad($"tensor '{name}' is not an object");
            string dtype = String(entry, "dtype") ?? throw Bad($"tensor '{name}' has no string dtype");
            var shape = Longs(entry, "shape") ?? throw Bad($"tensor '{name}' has no integer shape");
            var offs = Longs(entry, "data_offsets");
            if (offs is not { Length: 2 } || offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataLength)
                throw Bad($"tensor '{name}' lies outside the data (truncated file?)");
            if (shape.Any(d => d < 0)) throw Bad($"tensor '{name}' has a negative dimension");
            int width = dtype switch
            {
                "F32" => 4, "F16" or "BF16" => 2, "F64" => 8, _ => throw Bad($"tensor '{name}' has unsupported dtype {dtype}"),
            };
            long count;
            try { count = shape.Aggregate(1L, (a, b) => checked(a * b)); _ = checked(count * width); }
            catch (OverflowException) { throw Bad($"tensor '{name}' has an impossible shape [{string.Join(", ", shape)}]"); }
            if (offs[1] - offs[0] != count * width)
                throw Bad($"tensor '{name}' has {offs[1] - offs[0]} bytes, its shape needs {count * width}");
            spans.Add((offs[0], offs[1], name));
            var data = new float[count];
            var src = bytes.AsSpan((int)(dataStart + offs[0]), (int)(offs[1] - offs[0]));
            switch (dtype)
            {
                case "F32": System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src).CopyTo(data); break;
                case "F64": for (int i = 0; i < count; i++) data[i] = (float)BitConverter.ToDouble(src.Slice(i * 8, 8)); break;
                case "F16": for (int i = 0; i < count; i++) data[i] = (float)BitConverter.ToHalf(src.Slice(i * 2, 2)); break;
                case "BF16": for (int i = 0; i < count; i++) data[i] = BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(src.Slice(i * 2, 2)) << 16); break;
            }
            result[name] = new TensorData(shape, data);
        }
        long at = 0;
        foreach (var (begin, end, name) in spans.OrderBy(s => s.Begin).ThenBy(s => s.End))
        {
            if (begin != at) throw Bad(begin < at ? $"tensor '{name}' overlaps another" : $"the data has a hole before tensor '{name}'");
            at = end;
        }
        if (at != dataLength) throw Bad($"{dataLength - at} bytes after the last tensor");
        return result;
    }

    private static string? String(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static long[]? Longs(JsonObject o, string key)
    {
        if (o[key] is not JsonArray a) return null;
        var result = new long[a.Count];
        for (int i = 0; i < a.Count; i++)
            if (a[i] is JsonValue v && v.TryGetValue<long>(out var x)) result[i] = x;
            else return null;
        return result;
    }
}
