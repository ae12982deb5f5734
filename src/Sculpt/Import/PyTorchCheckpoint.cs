using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Import;

/// <summary>A tensor read from a checkpoint: its dtype name and shape, values converted to float32.</summary>
public sealed record CheckpointTensor(string Dtype, long[] Shape, float[] Data);

/// <summary>
/// Reads files written by <c>torch.save</c>: the zip format (PyTorch ≥ 1.6: archive/data.pkl + archive/data/KEY)
/// and the legacy format of earlier versions (magic number, protocol 1001, sys info, the object pickle, the
/// storage-key list, then each storage as an int64 element count and raw little-endian bytes). Tensors saved
/// on a GPU load to the CPU. Only tensors and plain containers are built; anything else is refused.
/// </summary>
public static class PyTorchCheckpoint
{
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);
    private const long LegacyProtocol = 1001;
    /// <summary>The pickled object tree (data.pkl) of a checkpoint: names and shapes, a few MB even for a 40 M-parameter model.</summary>
    public const long MaxPickleBytes = 256L << 20;
    /// <summary>A whole checkpoint: weights (<see cref="Runtime.ModelPackage.MaxWeightBytes"/>) plus an optimiser's state of twice that.</summary>
    /// <summary>Elements of one tensor (float32 after reading): <see cref="Runtime.ModelPackage.MaxWeightBytes"/> worth.</summary>
    public const long MaxTensorElements = Runtime.ModelPackage.MaxWeightBytes / 4;
    public const long MaxCheckpointBytes = 3 * Runtime.ModelPackage.MaxWeightBytes;

    private static readonly Dictionary<string, (string Dtype, int Size)> StorageTypes = new()
    {
        ["FloatStorage"] = ("float32", 4), ["DoubleStorage"] = ("float64", 8), ["HalfStorage"] = ("float16", 2), ["BFloat16Storage"] = ("bfloat16", 2),
        ["LongStorage"] = ("int64", 8), ["IntStorage"] = ("int32", 4), ["ShortStorage"] = ("int16", 2), ["CharStorage"] = ("int8", 1),
        ["ByteStorage"] = ("uint8", 1), ["BoolStorage"] = ("bool", 1),
    };

    private sealed class Storage(string key, string dtype, int elementSize)
    {
        public string Key { get; } = key;
        public string Dtype { get; } = dtype;
        public int ElementSize { get; } = elementSize;
        public byte[]? Bytes { get; set; }
        public long ByteOffset { get; init; }
    }

    /// <summary>A tensor whose storage bytes may arrive after the pickle (legacy format): materialised at the end.</summary>
    private sealed class PendingTensor(Storage storage, long offset, long[] shape, long[] stride)
    {
        public CheckpointTensor Materialize(string source)
        {
            var bytes = storage.Bytes ?? throw new InvalidDataException($"{source}: storage {storage.Key} has no data");
            // shape and strides come from the pickle: the whole extent is checked against the storage before
            // anything is allocated (a stride-0 tensor of 10^12 elements over one stored value would not fit)
            if (shape.Length != stride.Length || shape.Any(d => d < 0) || stride.Any(d => d < 0) || offset < 0)
                throw new InvalidDataException($"{source}: tensor of shape ({string.Join(", ", shape)}) has a malformed size, stride or offset");
            long count = 1, last = offset;
            foreach (var (size, step) in shape.Zip(stride))
            {
                if (size > 0 && count > MaxTensorElements / size)
                    throw new InvalidDataException($"{source}: tensor of shape ({string.Join(", ", shape)}) is larger than the {MaxTensorElements:N0} elements allowed");
                count *= size;
                if (size > 0 && step > 0 && (size - 1) > (long.MaxValue / 2 - last) / step)
                    throw new InvalidDataException($"{source}: tensor of shape ({string.Join(", ", shape)}) runs past its storage {storage.Key}");
                last += size > 0 ? (size - 1) * step : 0;
            }
            if (count > 0 && (last + 1) > (bytes.Length - storage.ByteOffset) / storage.ElementSize)
                throw new InvalidDataException($"{source}: tensor runs past its storage {storage.Key} (truncated file?)");
            var data = new float[count];
            var index = new long[shape.Length];
            for (long i = 0; i < count; i++)
            {
                long element = offset;
                for (int d = 0; d < shape.Length; d++) element += index[d] * stride[d];
                long at = storage.ByteOffset + element * storage.ElementSize;
                if (at < 0 || at + storage.ElementSize > bytes.Length) throw new InvalidDataException($"{source}: tensor runs past its storage {storage.Key} (truncated file?)");
                data[i] = Read(bytes.AsSpan((int)at, storage.ElementSize), storage.Dtype);
                for (int d = shape.Length - 1; d >= 0; d--) { if (++index[d] < shape[d]) break; index[d] = 0; }
            }
            return new CheckpointTensor(storage.Dtype, shape, data);
        }
    }

    private static float Read(ReadOnlySpan<byte> b, string dtype) => dtype switch
    {
        "float32" => BinaryPrimitives.ReadSingleLittleEndian(b),
        "float64" => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
        "float16" => (float)BinaryPrimitives.ReadHalfLittleEndian(b),
        "bfloat16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
        "int64" => BinaryPrimitives.ReadInt64LittleEndian(b),
        "int32" => BinaryPrimitives.ReadInt32LittleEndian(b),
        "int16" => BinaryPrimitives.ReadInt16LittleEndian(b),
        "int8" => (sbyte)b[0],
        _ => b[0],
    };

    /// <summary>The unpickled object: dicts, lists, tuples, numbers, strings and <see cref="CheckpointTensor"/>s.</summary>
    public static object? Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: checkpoint not found");
        var head = Common.InputFile.ReadHead(path, "checkpoint", 4, MaxCheckpointBytes);
        try { return head[0] == 'P' && head[1] == 'K' ? ReadZip(path) : ReadLegacy(path); }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path))
        {
            throw new InvalidDataException($"{path}: not a readable torch.save file ({Common.Messages.OneLine(e.Message)})");
        }
        catch (IOException e) when (e is not FileNotFoundException) { throw new InvalidDataException($"{path}: cannot read: {Common.Messages.OneLine(e.Message)}"); }
    }

    private static object? ReadZip(string path)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: not a readable zip checkpoint ({e.Message})"); }
        using (zip)
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl") && e.FullName.Count(c => c == '/') == 1)
                ?? throw new InvalidDataException($"{path}: zip archive without <name>/data.pkl: not a torch.save file");
            string prefix = pkl.FullName[..(pkl.FullName.IndexOf('/') + 1)];
            var storages = new Dictionary<string, Storage>();
            var pending = new List<(PendingTensor T, Holder H)>();
            object? root;
            long storageBytes = 0;
            using (var ms = new MemoryStream(Common.ZipEntries.Read(pkl, MaxPickleBytes, path)))
            {
                root = Unpickler(ms, path, storages, pending, id =>
                {
                    var (type, key, _, _) = StorageId(id, path);
                    var entry = zip.GetEntry($"{prefix}data/{key}") ?? throw new InvalidDataException($"{path}: storage data/{key} missing from the archive");
                    storageBytes += entry.Length;
                    if (storageBytes > Runtime.ModelPackage.MaxWeightBytes)
                        throw new InvalidDataException($"{path}: storages hold more than the {Runtime.ModelPackage.MaxWeightBytes:N0} bytes allowed");
                    return new Storage(key, type.Dtype, type.Size) { Bytes = Common.ZipEntries.Read(entry, Runtime.ModelPackage.MaxWeightBytes, path) };
                }).Load();
            }
            return Finish(root, pending, path);
        }
    }

    private static object? ReadLegacy(string path)
    {
        using var f = new BufferedStream(File.OpenRead(path));
        var plain = () => new PickleReader(f, path).Load();
        object? magic;
        try { magic = plain(); }
        catch (InvalidDataException) { throw new InvalidDataException($"{path}: neither a zip nor a legacy torch.save file"); }
        if (!(magic is BigInteger m && m == LegacyMagic)) throw new InvalidDataException($"{path}: not a torch.save file (bad magic number)");
        if (plain() is not long protocol || protocol != LegacyProtocol) throw new InvalidDataException($"{path}: unsupported legacy protocol version");
        plain(); // sys_info: byte order and type sizes (little-endian assumed, as every PyTorch build writes)
        var storages = new Dictionary<string, Storage>();
        var pending = new List<(PendingTensor T, Holder H)>();
        var root = Unpickler(f, path, storages, pending, id =>
        {
            var (type, key, _, _) = StorageId(id, path);
            return new Storage(key, type.Dtype, type.Size);
        }).Load();
        var keys = plain() as List<object?> ?? throw new InvalidDataException($"{path}: storage key list missing");
        var r = new BinaryReader(f);
        foreach (var k in keys)
        {
            var key = StorageKey(k);
            if (!storages.TryGetValue(key, out var st)) throw new InvalidDataException($"{path}: data for unknown storage {key}");
            long numel;
            try { numel = r.ReadInt64(); } catch (EndOfStreamException) { throw new InvalidDataException($"{path}: truncated (storage {key} missing)"); }
            // the declared element count is checked against the bytes left before anything is allocated for it
            if (numel < 0 || numel > Math.Min(f.Length - f.Position, Runtime.ModelPackage.MaxWeightBytes) / st.ElementSize)
                throw new InvalidDataException($"{path}: storage {key} declares {numel:N0} elements, more than the file holds (truncated?)");
            var bytes = r.ReadBytes((int)(numel * st.ElementSize));
            if (bytes.Length != numel * st.ElementSize) throw new InvalidDataException($"{path}: truncated (storage {key} has {bytes.Length} of {numel * st.ElementSize} bytes)");
            st.Bytes = bytes;
        }
        // views of a root storage (legacy view_metadata) share its bytes
        foreach (var st in storages.Values.Where(s => s.Bytes is null && s.Key.Contains('@')))
            st.Bytes = storages[st.Key[..st.Key.IndexOf('@')]].Bytes;
        return Finish(root, pending, path);
    }

    private sealed class Holder { public object? Value; }

    private static ((string Dtype, int Size) Type, string Key, string Location, long Numel) StorageId(object? id, string path)
    {
        if (id is not PyTuple { Items.Length: >= 5 } t || t.Items[0] as string != "storage")
            throw new InvalidDataException($"{path}: unexpected persistent id (not a tensor storage)");
        if (t.Items[1] is not PyGlobal g || !StorageTypes.TryGetValue(g.Name, out var type))
            throw new InvalidDataException($"{path}: unsupported storage type {Common.Messages.Quote(t.Items[1]?.ToString() ?? "None")}");
        return (type, StorageKey(t.Items[2]), t.Items[3]?.ToString() ?? "cpu",
            t.Items[4] is long n ? n : throw new InvalidDataException($"{path}: storage element count is not an integer"));
    }

    private static PickleReader Unpickler(Stream s, string path, Dictionary<string, Storage> storages, List<(PendingTensor, Holder)> pending, Func<object?, Storage> makeStorage) =>
        new(s, path)
        {
            PersistentLoad = id =>
            {
                var (_, key, _, _) = StorageId(id, path);
                if (!storages.TryGetValue(key, out var st)) storages[key] = st = makeStorage(id);
                // legacy view_metadata: (view_key, offset, size) into the root storage
                if (id is PyTuple { Items.Length: 6 } t && t.Items[5] is PyTuple { Items.Length: 3 } view)
                {
                    string viewKey = $"{key}@{view.Items[0]}";
                    if (!storages.TryGetValue(viewKey, out var v))
                        storages[viewKey] = v = new Storage(viewKey, st.Dtype, st.ElementSize) { ByteOffset = ViewOffset(view.Items[1], st.ElementSize, path) };
                    return v;
                }
                return st;
            },
            Reduce = (g, args) =>
            {
                if (g.Module != "torch._utils") return null;
                switch (g.Name)
                {
                    case "_rebuild_tensor_v2" or "_rebuild_tensor" when args.Length >= 4 && args[0] is Storage st:
                        var shape = Integers(args[2], "size", path);
                        var stride = Integers(args[3], "stride", path);
                        var offset = args[1] is long o ? o : throw new InvalidDataException($"{path}: tensor storage offset is not an integer");
                        var holder = new Holder();
                        pending.Add((new PendingTensor(st, offset, shape, stride), holder));
                        return holder;
                    case "_rebuild_parameter" or "_rebuild_parameter_with_state" when args.Length >= 1 && args[0] is Holder h:
                        return h;
                    default: return null;
                }
            },
        };

    /// <summary>A storage's key (torch writes small integers as text): kept printable, since messages name it.</summary>
    private static string StorageKey(object? key) => Common.Messages.Quote(key?.ToString() ?? "", 64);

    private static long[] Integers(object? tuple, string what, string path) =>
        tuple is PyTuple { Items.Length: <= 16 } t && t.Items.All(x => x is long)
            ? t.Items.Select(x => (long)x!).ToArray()
            : throw new InvalidDataException($"{path}: tensor {what} is not a tuple of at most 16 integers");

    private static long ViewOffset(object? elements, int elementSize, string path) =>
        elements is long n && n >= 0 && n <= Runtime.ModelPackage.MaxWeightBytes ? n * elementSize
            : throw new InvalidDataException($"{path}: storage view offset {Common.Messages.Quote(elements?.ToString() ?? "None")} is malformed");

    private static object? Finish(object? root, List<(PendingTensor T, Holder H)> pending, string path)
    {
        foreach (var (t, h) in pending) h.Value = t.Materialize(path);
        if (root is Holder top) return top.Value;
        // iterative, so that a deeply nested (hostile) pickle cannot overflow the stack
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var work = new Stack<object>();
        if (root is not null) work.Push(root);
        object? Swap(object? o)
        {
            if (o is Holder h) return h.Value;
            if (o is Dictionary<object, object?> or List<object?> or PyTuple && seen.Add(o)) work.Push(o);
            return o;
        }
        while (work.Count > 0)
            switch (work.Pop())
            {
                case Dictionary<object, object?> d: foreach (var k in d.Keys.ToList()) d[k] = Swap(d[k]); break;
                case List<object?> l: for (int i = 0; i < l.Count; i++) l[i] = Swap(l[i]); break;
                case PyTuple t: for (int i = 0; i < t.Items.Length; i++) t.Items[i] = Swap(t.Items[i]); break;
            }
        return root;
    }

    /// <summary>
    /// The state dict inside a checkpoint: the object itself when it maps names to tensors, or its
    /// 'state_dict' / 'model_state_dict' / 'model' entry (EchoNet saves {'epoch', 'state_dict', 'best_loss',
    /// 'loss', 'opt_dict', 'scheduler_dict'}). DataParallel's 'module.' prefix is removed.
    /// </summary>
    public static Dictionary<string, CheckpointTensor> StateDict(object? checkpoint, string path)
    {
        if (checkpoint is not Dictionary<object, object?> d) throw new InvalidDataException($"{path}: the checkpoint is not a dict");
        bool IsStateDict(Dictionary<object, object?> x) => x.Count > 0 && x.All(kv => kv.Key is string && kv.Value is CheckpointTensor);
        var sd = IsStateDict(d) ? d
            : new[] { "state_dict", "model_state_dict", "model" }.Select(k => d.GetValueOrDefault(k) as Dictionary<object, object?>).FirstOrDefault(x => x is not null && IsStateDict(x))
            ?? throw new InvalidDataException(
                $"{path}: no state dict found (top-level keys: {Common.Messages.Quote(string.Join(", ", d.Keys.Take(10).Select(k => k is string ? k : k.GetType().Name)), 200)})");
        var result = new Dictionary<string, CheckpointTensor>();
        foreach (var (key, value) in sd)
        {
            var name = (string)key;
            if (name.StartsWith("module.")) name = name["module.".Length..];
            if (!result.TryAdd(name, (CheckpointTensor)value!))
                throw new InvalidDataException($"{path}: the state dict holds '{Common.Messages.Quote(name)}' twice (with and without DataParallel's 'module.')");
        }
        return result;
    }

    /// <summary>
    /// Maps a state dict onto a graph's weights (node name + .weight/.bias/.running_mean/.running_var;
    /// BatchNorm's num_batches_tracked is ignored). Missing, unexpected and wrongly shaped keys are all listed.
    /// </summary>
    public static WeightSet ToWeights(Dictionary<string, CheckpointTensor> stateDict, NetworkGraph graph, string path)
    {
        var expected = WeightLayout.Of(graph).ToDictionary(e => e.Key, e => e.Shape);
        var missing = expected.Keys.Where(k => !stateDict.ContainsKey(k)).ToList();
        var unexpected = stateDict.Keys.Where(k => !expected.ContainsKey(k) && !k.EndsWith(".num_batches_tracked")).ToList();
        var wrong = expected.Keys.Where(stateDict.ContainsKey).Where(k => !stateDict[k].Shape.SequenceEqual(expected[k]))
            .Select(k => $"{k} [{string.Join(", ", stateDict[k].Shape)}] vs expected [{string.Join(", ", expected[k])}]").ToList();
        if (missing.Count + unexpected.Count + wrong.Count > 0)
        {
            string List(string what, List<string> items) => items.Count == 0 ? "" : $"{items.Count} {what}: {Common.Messages.Quote(string.Join(", ", items.Take(8)), 400)}{(items.Count > 8 ? ", …" : "")}; ";
            throw new InvalidDataException($"{path}: state dict does not match the architecture: {List("missing", missing)}{List("unexpected", unexpected)}{List("wrongly shaped", wrong)}".TrimEnd(' ', ';'));
        }
        var w = new WeightSet();
        foreach (var k in expected.Keys) w[k] = new TensorData(stateDict[k].Shape, stateDict[k].Data);
        return w;
    }
}
