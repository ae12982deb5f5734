namespace Sculpt.Onnx;

// Field numbers of onnx.proto (ONNX IR version 8), named once for the reader and the writer.
internal static class ModelField
{
    public const int IrVersion = 1, ProducerName = 2, ProducerVersion = 3, Graph = 7, OpsetImport = 8, MetadataProps = 14;
}
internal static class OpsetField { public const int Domain = 1, Version = 2; }
internal static class GraphField { public const int Node = 1, Name = 2, Initializer = 5, Input = 11, Output = 12; }
internal static class NodeField { public const int Input = 1, Output = 2, Name = 3, OpType = 4, Attribute = 5, Domain = 7; }
internal static class AttributeField { public const int Name = 1, F = 2, I = 3, S = 4, T = 5, Floats = 7, Ints = 8, Type = 20; }
internal static class TensorField
{
    public const int Dims = 1, DataType = 2, FloatData = 4, Int32Data = 5, Int64Data = 7, Name = 8, RawData = 9, DoubleData = 10,
        DataLocation = 14;
}
internal static class ValueInfoField { public const int Name = 1, Type = 2; }
internal static class TypeField { public const int Tensor = 1; }
internal static class TensorTypeField { public const int ElemType = 1, Shape = 2; }
internal static class ShapeField { public const int Dim = 1; }
internal static class DimField { public const int Value = 1, Param = 2; }
internal static class EntryField { public const int Key = 1, Value = 2; }

internal enum AttributeType { Float = 1, Int = 2, String = 3, Tensor = 4, Floats = 6, Ints = 7 }

internal enum DataType
{
    Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, Bool = 9, Float16 = 10, Double = 11, UInt32 = 12,
    UInt64 = 13,
}
