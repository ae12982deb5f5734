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

    public static WeightSet Read(byte[] bytes, string source)
    {
        if (bytes.Length < 8) throw new InvalidDataException($"{source}: safetensors data is truncated");
        ulong headerLen = BitConverter.ToUInt64(bytes, 0);
        if (headerLen > (ulong)(bytes.Length - 8)) throw new InvalidDataException($"{source}: safetensors header length {headerLen} exceeds the data");
        JsonObject header;
        try { header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLen))!.AsObject(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new InvalidDataException($"{source}: safetensors header is not valid JSON"); }
        long dataStart = 8 + (long)headerLen;
        var result = new WeightSet();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            var entry = node!.AsObject();
            string dtype = entry["dtype"]!.GetValue<string>();
            var shape = entry["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            var offs = entry["data_offsets"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            long begin = dataStart + offs[0], end = dataStart + offs[1];
            if (offs[0] < 0 || end > bytes.Length || begin > end) throw new InvalidDataException($"{source}: tensor '{name}' lies outside the data (truncated file?)");
            long count = shape.Aggregate(1L, (a, b) => a * b);
            int width = dtype switch { "F32" => 4, "F16" or "BF16" => 2, "F64" => 8, _ => throw new InvalidDataException($"{source}: tensor '{name}' has unsupported dtype {dtype}") };
            if (end - begin != count * width) throw new InvalidDataException($"{source}: tensor '{name}' has {end - begin} bytes, its shape needs {count * width}");
            var data = new float[count];
            var src = bytes.AsSpan((int)begin, (int)(end - begin));
            switch (dtype)
            {
                case "F32": System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src).CopyTo(data); break;
                case "F64": for (int i = 0; i < count; i++) data[i] = (float)BitConverter.ToDouble(src.Slice(i * 8, 8)); break;
                case "F16": for (int i = 0; i < count; i++) data[i] = (float)BitConverter.ToHalf(src.Slice(i * 2, 2)); break;
                case "BF16": for (int i = 0; i < count; i++) data[i] = BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(src.Slice(i * 2, 2)) << 16); break;
            }
            result[name] = new TensorData(shape, data);
        }
        return result;
    }
}
