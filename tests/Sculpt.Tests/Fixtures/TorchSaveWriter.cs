using System.IO.Compression;
using System.Text;

namespace Sculpt.Tests.Fixtures;

/// <summary>A float32 tensor to be written, with explicit strides (so non-contiguous views can be written too).</summary>
public sealed record SavedTensor(float[] Storage, long[] Shape, long[] Stride, long Offset = 0);

/// <summary>A reference to a Python global the writer emits (used to plant refused objects).</summary>
public sealed record Global(string Module, string Name, object?[] Args);

/// <summary>
/// Writes torch.save files the way PyTorch does, for fixtures: pickle protocol 2 with tensors as
/// torch._utils._rebuild_tensor_v2 over persistent storage ids, OrderedDicts as collections.OrderedDict, in the
/// zip format (archive/data.pkl, archive/data/KEY, version, byteorder) or the legacy format.
/// </summary>
public sealed class TorchSaveWriter
{
    private readonly List<(string Key, float[] Data)> _storages = new();
    private readonly string _location;
    private readonly bool _legacy;

    private TorchSaveWriter(string location, bool legacy) { _location = location; _legacy = legacy; }

    public static void Save(string path, object? obj, bool legacy, string location = "cpu")
    {
        var w = new TorchSaveWriter(location, legacy);
        var pickle = w.Pickle(obj);
        if (!legacy)
        {
            using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
            void Entry(string name, byte[] data) { using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open(); s.Write(data); }
            Entry("archive/data.pkl", pickle);
            Entry("archive/byteorder", Encoding.ASCII.GetBytes("little"));
            foreach (var (key, data) in w._storages) Entry($"archive/data/{key}", data.SelectMany(BitConverter.GetBytes).ToArray());
            Entry("archive/version", Encoding.ASCII.GetBytes("3\n"));
            return;
        }
        using var f = File.Create(path);
        var magic = System.Numerics.BigInteger.Parse("119547037146038801333356");
        f.Write(new TorchSaveWriter(location, true).Pickle(magic));
        f.Write(new TorchSaveWriter(location, true).Pickle(1001L));
        f.Write(new TorchSaveWriter(location, true).Pickle(new Dictionary<string, object?> { ["protocol_version"] = 1001L, ["little_endian"] = true, ["type_sizes"] = new Dictionary<string, object?> { ["short"] = 2L, ["int"] = 4L, ["long"] = 4L } }));
        f.Write(pickle);
        f.Write(new TorchSaveWriter(location, true).Pickle(w._storages.Select(s => (object?)s.Key).ToList()));
        foreach (var (_, data) in w._storages)
        {
            f.Write(BitConverter.GetBytes((long)data.Length));
            f.Write(data.SelectMany(BitConverter.GetBytes).ToArray());
        }
    }

    private byte[] Pickle(object? obj)
    {
        var o = new MemoryStream();
        o.Write(new byte[] { 0x80, 2 });
        Emit(o, obj);
        o.WriteByte((byte)'.');
        return o.ToArray();
    }

    private static void Str(Stream o, string s) { var b = Encoding.UTF8.GetBytes(s); o.WriteByte((byte)'X'); o.Write(BitConverter.GetBytes(b.Length)); o.Write(b); }
    private static void GlobalRef(Stream o, string module, string name) => o.Write(Encoding.ASCII.GetBytes($"c{module}\n{name}\n"));

    private void Emit(Stream o, object? v)
    {
        switch (v)
        {
            case null: o.WriteByte((byte)'N'); break;
            case bool b: o.WriteByte(b ? (byte)0x88 : (byte)0x89); break;
            case int i: Emit(o, (long)i); break;
            case long l when l >= int.MinValue && l <= int.MaxValue: o.WriteByte((byte)'J'); o.Write(BitConverter.GetBytes((int)l)); break;
            case long l: { var b = BitConverter.GetBytes(l); o.WriteByte(0x8a); o.WriteByte(8); o.Write(b); break; }
            case System.Numerics.BigInteger big: { var b = big.ToByteArray(); o.WriteByte(0x8a); o.WriteByte((byte)b.Length); o.Write(b); break; }
            case double d: { var b = BitConverter.GetBytes(d); Array.Reverse(b); o.WriteByte((byte)'G'); o.Write(b); break; }
            case string s: Str(o, s); break;
            case SavedTensor t:
            {
                GlobalRef(o, "torch._utils", "_rebuild_tensor_v2");
                o.WriteByte((byte)'(');
                string key = _storages.Count.ToString();
                _storages.Add((key, t.Storage));
                // persistent id ('storage', torch.FloatStorage, key, location, numel[, view_metadata])
                o.WriteByte((byte)'(');
                Str(o, "storage"); GlobalRef(o, "torch", "FloatStorage"); Str(o, key); Str(o, _location); Emit(o, (long)t.Storage.Length);
                if (_legacy) o.WriteByte((byte)'N');
                o.WriteByte((byte)'t');
                o.WriteByte((byte)'Q');
                Emit(o, t.Offset);
                Emit(o, t.Shape.Select(x => (object?)x).ToArray());
                Emit(o, t.Stride.Select(x => (object?)x).ToArray());
                o.WriteByte(0x89);
                GlobalRef(o, "collections", "OrderedDict"); o.WriteByte((byte)')'); o.WriteByte((byte)'R');
                o.WriteByte((byte)'t');
                o.WriteByte((byte)'R');
                break;
            }
            case Global g:
                GlobalRef(o, g.Module, g.Name);
                Emit(o, g.Args);
                o.WriteByte((byte)'R');
                break;
            case object?[] tuple:
                o.WriteByte((byte)'(');
                foreach (var x in tuple) Emit(o, x);
                o.WriteByte((byte)'t');
                break;
            case List<object?> list:
                o.WriteByte((byte)']'); o.WriteByte((byte)'(');
                foreach (var x in list) Emit(o, x);
                o.WriteByte((byte)'e');
                break;
            case Dictionary<string, object?> dict:
                // state dicts are OrderedDicts; other dicts plain (as torch.save writes EchoNet's checkpoint)
                if (dict.Values.All(x => x is SavedTensor) && dict.Count > 0) { GlobalRef(o, "collections", "OrderedDict"); o.WriteByte((byte)')'); o.WriteByte((byte)'R'); }
                else o.WriteByte((byte)'}');
                o.WriteByte((byte)'(');
                foreach (var (k, x) in dict) { Str(o, k); Emit(o, x); }
                o.WriteByte((byte)'u');
                break;
            case Dictionary<long, object?> intDict:
                o.WriteByte((byte)'}'); o.WriteByte((byte)'(');
                foreach (var (k, x) in intDict) { Emit(o, k); Emit(o, x); }
                o.WriteByte((byte)'u');
                break;
            default: throw new ArgumentException($"cannot pickle {v.GetType()}");
        }
    }
}
