using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// A TorchSharp <c>Scalar</c> made by implicit conversion (<c>tensor * 2.0</c>, <c>clamp(0, 1)</c>) belongs to no
/// DisposeScope and is dead as soon as its handle is read, so the GC may finalize it while libtorch still reads it
/// ("Expected false to be true" from <c>Scalar::toFloat</c> inside Adam's step, seen in CI). Sculpt therefore makes
/// every Scalar explicitly and holds it until the call returns; this test reads the compiled IL and names each
/// method that still converts implicitly.
/// </summary>
public class ScalarLifetimeTests
{
    /// <summary>Each method of <paramref name="assembly"/> with the methods it calls, named with their parameter types.</summary>
    public static Dictionary<string, HashSet<string>> CallGraph(string assembly)
    {
        using var pe = new PEReader(File.OpenRead(assembly));
        var md = pe.GetMetadataReader();
        var graph = new Dictionary<string, HashSet<string>>();
        foreach (var handle in md.MethodDefinitions)
        {
            var method = md.GetMethodDefinition(handle);
            var (type, name) = Describe(md, handle);
            var callees = graph.TryGetValue($"{type}.{name}", out var known) ? known : graph[$"{type}.{name}"] = new HashSet<string>();
            if (method.RelativeVirtualAddress == 0) continue;
            var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader();
            while (il.RemainingBytes > 0)
            {
                var op = ReadOpCode(ref il);
                if (op.OperandType != OperandType.InlineMethod) { Skip(ref il, op); continue; }
                var (calleeType, callee) = Describe(md, MetadataTokens.EntityHandle(il.ReadInt32()));
                if (callee.Length > 0) callees.Add($"{calleeType}.{callee}");
            }
        }
        return graph;
    }

    private static readonly string[] ScalarMakers = { "TorchSharp.Scalar.op_Implicit(", "TorchSharp.ScalarExtensionMethods.ToScalar(" };

    /// <summary>The TorchSharp methods that make a Scalar themselves or through any method they call.</summary>
    public static HashSet<string> TorchSharpMethodsThatMakeScalars()
    {
        var graph = CallGraph(Path.Combine(AppContext.BaseDirectory, "TorchSharp.dll"));
        var makers = graph.Where(m => m.Value.Any(c => ScalarMakers.Any(c.StartsWith))).Select(m => m.Key).ToHashSet();
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (method, callees) in graph)
                if (!makers.Contains(method) && callees.Overlaps(makers)) { makers.Add(method); grew = true; }
        }
        return makers;
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    private static OpCode ReadOpCode(ref BlobReader il)
    {
        byte first = il.ReadByte();
        short value = first == 0xFE ? (short)(0xFE00 | il.ReadByte()) : first;
        return OpCodesByValue[value];
    }

    private static void Skip(ref BlobReader il, OpCode op)
    {
        switch (op.OperandType)
        {
            case OperandType.InlineNone: break;
            case OperandType.ShortInlineBrTarget: case OperandType.ShortInlineI: case OperandType.ShortInlineVar: il.ReadByte(); break;
            case OperandType.InlineVar: il.ReadInt16(); break;
            case OperandType.InlineI8: case OperandType.InlineR: il.ReadInt64(); break;
            case OperandType.InlineSwitch: for (int n = il.ReadInt32(); n > 0; n--) il.ReadInt32(); break;
            default: il.ReadInt32(); break; // tokens, 32-bit branches, ints and floats
        }
    }

    private static (string Type, string Name) Describe(MetadataReader md, EntityHandle handle)
    {
        var names = new TypeNames();
        switch (handle.Kind)
        {
            case HandleKind.MethodDefinition:
            {
                var m = md.GetMethodDefinition((MethodDefinitionHandle)handle);
                return (DefinitionName(md, m.GetDeclaringType()), md.GetString(m.Name) + Parameters(m.DecodeSignature(names, null)));
            }
            case HandleKind.MemberReference:
            {
                var m = md.GetMemberReference((MemberReferenceHandle)handle);
                if (m.GetKind() != MemberReferenceKind.Method) return ("", "");
                return (TypeName(md, m.Parent), md.GetString(m.Name) + Parameters(m.DecodeMethodSignature(names, null)));
            }
            case HandleKind.MethodSpecification:
                return Describe(md, md.GetMethodSpecification((MethodSpecificationHandle)handle).Method);
            default: return ("", "");
        }
    }

    private static string TypeName(MetadataReader md, EntityHandle parent)
    {
        switch (parent.Kind)
        {
            case HandleKind.TypeDefinition: return DefinitionName(md, (TypeDefinitionHandle)parent);
            case HandleKind.TypeReference:
            {
                var t = md.GetTypeReference((TypeReferenceHandle)parent);
                return t.ResolutionScope.Kind == HandleKind.TypeReference
                    ? $"{TypeName(md, (EntityHandle)t.ResolutionScope)}+{md.GetString(t.Name)}"
                    : $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}";
            }
            case HandleKind.TypeSpecification:
                return md.GetTypeSpecification((TypeSpecificationHandle)parent).DecodeSignature(new TypeNames(), null);
            default: return "";
        }
    }

    private static string Parameters(MethodSignature<string> signature) => $"({string.Join(",", signature.ParameterTypes)})";

    /// <summary>Type names as both a defining and a referencing assembly spell them, so overloads can be matched across them.</summary>
    private sealed class TypeNames : ISignatureTypeProvider<string, object?>
    {
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle,
            byte rawTypeKind) => DefinitionName(reader, handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[" + new string(',', shape.Rank - 1) + "]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetGenericInstantiation(string genericType, System.Collections.Immutable.ImmutableArray<string> typeArguments) =>
            $"{genericType}<{string.Join(",", typeArguments)}>";
        public string GetGenericTypeParameter(object? context, int index) => "!" + index;
        public string GetGenericMethodParameter(object? context, int index) => "!!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
        public string GetPinnedType(string elementType) => elementType;
    }

    private static string DefinitionName(MetadataReader md, TypeDefinitionHandle handle)
    {
        var t = md.GetTypeDefinition(handle);
        var outer = t.GetDeclaringType();
        return outer.IsNil ? $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}" : $"{DefinitionName(md, outer)}+{md.GetString(t.Name)}";
    }

    [Fact]
    public void NoSculptMethodMakesATorchScalarItDoesNotHold()
    {
        var makers = TorchSharpMethodsThatMakeScalars();
        var offenders = new[] { "Sculpt.dll", "Sculpt.Cli.dll" }
            .SelectMany(a => CallGraph(Path.Combine(AppContext.BaseDirectory, a)))
            .SelectMany(m => m.Value.Where(c => ScalarMakers.Any(c.StartsWith) && c.Contains("op_Implicit") || makers.Contains(c))
                .Select(c => $"{m.Key} calls {c}"))
            .Distinct().OrderBy(s => s, StringComparer.Ordinal).ToList();
        Assert.True(offenders.Count == 0, $"{offenders.Count} calls make a Scalar nobody holds:\n{string.Join("\n", offenders)}");
    }

    [Fact]
    public void TheScanFindsTheConversionsKnownInTorchSharp()
    {
        var makers = TorchSharpMethodsThatMakeScalars();
        // Adam's step converts eps implicitly: the call that failed in CI
        Assert.Contains(makers, m => m.StartsWith("TorchSharp.Modules.Adam.step("));
        Assert.Contains("TorchSharp.torch+Tensor.op_Multiply(TorchSharp.torch+Tensor,Double)", makers);
        Assert.DoesNotContain("TorchSharp.torch+Tensor.op_Multiply(TorchSharp.torch+Tensor,TorchSharp.torch+Tensor)", makers);
    }
}
