namespace Sculpt.Data;

/// <summary>A data set or input folder that cannot be read as one; the message names the file and the problem.</summary>
public sealed class DatasetException(string message) : Exception(message);
