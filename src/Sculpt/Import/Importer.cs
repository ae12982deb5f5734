using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Import;

/// <summary>Turns weights trained elsewhere into a Sculpt model package.</summary>
public static class Importer
{
    /// <summary>A PyTorch checkpoint's state dict mapped onto <paramref name="graph"/> (names must match the graph's node names + parameter suffix).</summary>
    public static ModelPackage FromPyTorch(string checkpoint, NetworkGraph graph, TaskInfo task, string arch)
    {
        var sd = PyTorchCheckpoint.StateDict(PyTorchCheckpoint.Read(checkpoint), checkpoint);
        var weights = PyTorchCheckpoint.ToWeights(sd, graph, checkpoint);
        var meta = new ModelMeta { Task = task, Architecture = arch };
        meta.Training = new System.Text.Json.Nodes.JsonObject { ["imported_from"] = Path.GetFullPath(checkpoint), ["format"] = "pytorch" };
        return new ModelPackage(graph, weights, meta);
    }
}
