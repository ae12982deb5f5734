using System.Numerics;
using System.Text;

namespace Sculpt.Import;

/// <summary>A reference to a Python global (module.name) as it appears in a pickle; never resolved or executed.</summary>
public sealed record PyGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>A Python tuple (kept apart from lists so persistent ids and rebuild arguments read naturally).</summary>
public sealed record PyTuple(object?[] Items);

/// <summary>
/// A pickle reader that builds only plain data: None, bool, int, float, str, bytes, list, tuple, dict, plus the
/// values a <see cref="Resolver"/> accepts for a REDUCE of a known global (PyTorch tensors). Nothing is looked up
/// or executed: any other global, NEWOBJ or object state is refused with the object's type named.
/// Opcodes of protocols 0–5 that carry data are implemented.
/// </summary>
public sealed class PickleReader(Stream stream, string source)
{
    public delegate object? Resolver(PyGlobal callable, object?[] args);
    public Func<object?, object?>? PersistentLoad { get; init; }
    public Resolver? Reduce { get; init; }

    /// <summary>Largest single string or bytes value read from a stream that cannot say how much it holds.</summary>
    public const long MaxUnseekableBytes = 256L << 20;

    /// <summary>Longest line of a text opcode (a module name, a protocol-0 number or string).</summary>
    public const int MaxLineChars = 1 << 16;

    private sealed class Mark;
    private static readonly Mark MarkObject = new();

    public object? Load()
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        object? Pop() { var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v; }
        List<object?> PopMark()
        {
            int m = stack.FindLastIndex(o => ReferenceEquals(o, MarkObject));
            if (m < 0) throw Bad("MARK missing");
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        string Line()
        {
            // text opcodes (protocol 0) hold names and numbers; a longer line is hostile (and BigInteger.Parse is quadratic)
            var sb = new StringBuilder();
            int c;
            while ((c = stream.ReadByte()) >= 0 && c != '\n')
                if (sb.Append((char)c).Length > MaxLineChars) throw Bad($"a text opcode's line is longer than {MaxLineChars:N0} characters");
            return sb.ToString();
        }
        byte[] Bytes(long n)
        {
            // a declared length is checked against the bytes left before anything is allocated for it
            if (n < 0) throw Bad($"negative length {n}");
            if (stream.CanSeek ? n > stream.Length - stream.Position : n > MaxUnseekableBytes)
                throw Bad($"declares {n:N0} bytes, more than the file holds (truncated or corrupt)");
            var b = r.ReadBytes((int)n);
            if (b.Length != n) throw Bad("truncated");
            return b;
        }

        try
        {
            while (true)
            {
                int op = stream.ReadByte();
                if (op < 0) throw Bad("truncated (no STOP opcode)");
                switch ((char)op)
                {
                    case '\x80': r.ReadByte(); break; // PROTO
                    case '\x95': r.ReadInt64(); break; // FRAME
                    case '.': return stack.Count == 1 ? stack[0] : throw Bad("stack not empty at STOP");
                    case '(': stack.Add(MarkObject); break;
                    case ')': stack.Add(new PyTuple(Array.Empty<object?>())); break;
                    case ']': stack.Add(new List<object?>()); break;
                    case '}': stack.Add(new Dictionary<object, object?>()); break;
                    case 'N': stack.Add(null); break;
                    case '\x88': stack.Add(true); break;
                    case '\x89': stack.Add(false); break;
                    case 'J': stack.Add((long)r.ReadInt32()); break;
                    case 'K': stack.Add((long)r.ReadByte()); break;
                    case 'M': stack.Add((long)r.ReadUInt16()); break;
                    case '\x8a': stack.Add(Long(Bytes(r.ReadByte()))); break;
                    case '\x8b': stack.Add(Long(Bytes(r.ReadInt32()))); break;
                    case 'G': { var b = Bytes(8); Array.Reverse(b); stack.Add(BitConverter.ToDouble(b)); break; }
                    case 'I':
                    {
                        var s = Line();
                        stack.Add(s == "00" ? false : s == "01" ? true : long.Parse(s, System.Globalization.CultureInfo.InvariantCulture));
                        break;
                    }
                    case 'L': stack.Add(Normalize(BigInteger.Parse(Line().TrimEnd('L'), System.Globalization.CultureInfo.InvariantCulture))); break;
                    case 'F': stack.Add(double.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)); break;
                    case 'X': stack.Add(Encoding.UTF8.GetString(Bytes(r.ReadUInt32()))); break;
                    case '\x8c': stack.Add(Encoding.UTF8.GetString(Bytes(r.ReadByte()))); break;
                    case '\x8d': stack.Add(Encoding.UTF8.GetString(Bytes(r.ReadInt64()))); break;
                    case 'V': stack.Add(Line()); break;
                    case 'T': stack.Add(Encoding.Latin1.GetString(Bytes(r.ReadInt32()))); break; // BINSTRING (py2 str)
                    case 'U': stack.Add(Encoding.Latin1.GetString(Bytes(r.ReadByte()))); break;
                    case 'S': stack.Add(Line().Trim('\'', '"')); break;
                    case 'B': stack.Add(Bytes(r.ReadUInt32())); break;
                    case 'C': stack.Add(Bytes(r.ReadByte())); break;
                    case '\x8e': stack.Add(Bytes(r.ReadInt64())); break;
                    case 't': stack.Add(new PyTuple(PopMark().ToArray())); break;
                    case '\x85': stack.Add(new PyTuple(new[] { Pop() })); break;
                    case '\x86': { var b = Pop(); var a = Pop(); stack.Add(new PyTuple(new[] { a, b })); break; }
                    case '\x87': { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new PyTuple(new[] { a, b, c })); break; }
                    case 'l': stack.Add(PopMark()); break;
                    case 'd': { var items = PopMark(); var d = new Dictionary<object, object?>(); for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1]; stack.Add(d); break; }
                    case 'a': { var v = Pop(); AsList(stack[^1]).Add(v); break; }
                    case 'e': { var items = PopMark(); AsList(stack[^1]).AddRange(items); break; }
                    case 's': { var v = Pop(); var k = Pop(); AsDict(stack[^1])[Key(k)] = v; break; }
                    case 'u': { var items = PopMark(); var d = AsDict(stack[^1]); for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1]; break; }
                    case 'q': memo[r.ReadByte()] = stack[^1]; break;
                    case 'r': memo[r.ReadUInt32()] = stack[^1]; break;
                    case 'p': memo[long.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)] = stack[^1]; break;
                    case '\x94': memo[memo.Count] = stack[^1]; break;
                    case 'h': stack.Add(Memo(memo, r.ReadByte())); break;
                    case 'j': stack.Add(Memo(memo, r.ReadUInt32())); break;
                    case 'g': stack.Add(Memo(memo, long.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture))); break;
                    case 'c': { var module = Line(); var name = Line(); stack.Add(new PyGlobal(module, name)); break; }
                    case '\x93': { var name = (string)Pop()!; var module = (string)Pop()!; stack.Add(new PyGlobal(module, name)); break; }
                    case 'R':
                    {
                        var args = Pop() as PyTuple ?? throw Bad("REDUCE arguments are not a tuple");
                        var callable = Pop() as PyGlobal ?? throw Bad("REDUCE of something that is not a global");
                        stack.Add(ReduceGlobal(callable, args.Items));
                        break;
                    }
                    case 'b':
                    {
                        var state = Pop();
                        // OrderedDict carries its attributes (state_dict._metadata) as plain state: ignore them
                        if (stack[^1] is Dictionary<object, object?> && state is Dictionary<object, object?> or PyTuple) break;
                        throw Refused(stack[^1]);
                    }
                    case '\x81': { Pop(); var cls = Pop(); throw Refused(cls); } // NEWOBJ
                    case '\x92': { Pop(); Pop(); var cls = Pop(); throw Refused(cls); } // NEWOBJ_EX
                    case 'Q': stack.Add(Persistent(Pop())); break;
                    case 'P': stack.Add(Persistent(Line())); break;
                    case '0': Pop(); break;
                    case '1': PopMark(); break;
                    case '2': stack.Add(stack[^1]); break;
                    case '\x8f': stack.Add(new List<object?>()); break; // EMPTY_SET: kept as a list of items
                    case '\x90': { var items = PopMark(); AsList(stack[^1]).AddRange(items); break; }
                    case '\x91': stack.Add(PopMark()); break; // FROZENSET
                    default: throw Bad($"unsupported pickle opcode 0x{op:x2}");
                }
            }
        }
        catch (EndOfStreamException) { throw Bad("truncated"); }
        catch (InvalidCastException) { throw Bad("malformed pickle"); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw Bad("malformed number in a text opcode"); }
        catch (ArgumentOutOfRangeException) { throw Bad("malformed pickle (stack underflow)"); }
    }

    private object? ReduceGlobal(PyGlobal callable, object?[] args)
    {
        if (callable.Module == "collections" && callable.Name == "OrderedDict")
        {
            var d = new Dictionary<object, object?>();
            var pairs = args.Length == 1 ? args[0] switch { List<object?> l => l.ToArray(), PyTuple t => t.Items, _ => null } : null;
            if (pairs is not null) // OrderedDict([(key, value), …]) or OrderedDict(((key, value), …))
                foreach (var p in pairs)
                {
                    var kv = p switch { PyTuple { Items.Length: 2 } t => t.Items, List<object?> { Count: 2 } l => l.ToArray(), _ => throw Bad("malformed OrderedDict items") };
                    d[Key(kv[0])] = kv[1];
                }
            else if (args.Length != 0) throw Bad($"malformed OrderedDict arguments ({string.Join(", ", args.Select(x => x?.GetType().Name ?? "None"))})");
            return d;
        }
        if (Reduce?.Invoke(callable, args) is { } value) return value;
        throw Refused(callable);
    }

    private object? Persistent(object? id) => PersistentLoad is { } f ? f(id) : throw Bad("persistent id in a pickle that allows none");

    private static object? Memo(Dictionary<long, object?> memo, long key) => memo.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"memo key {key} missing");
    private static List<object?> AsList(object? o) => o as List<object?> ?? throw new InvalidCastException();
    private static Dictionary<object, object?> AsDict(object? o) => o as Dictionary<object, object?> ?? throw new InvalidCastException();
    private static object Key(object? k) => k ?? "None";

    private static object Long(byte[] littleEndianTwosComplement) => Normalize(new BigInteger(littleEndianTwosComplement, isUnsigned: false, isBigEndian: false));
    private static object Normalize(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : v;

    private InvalidDataException Bad(string what) => new($"{source}: {what}");

    private InvalidDataException Refused(object? what) =>
        new($"{source}: refused to load a pickled {(what is PyGlobal g ? $"object of type {Common.Messages.Quote(g.ToString())}" : "object")}: only tensors and plain containers (dict, list, tuple, numbers, strings) are accepted, and nothing in the file is executed");
}
