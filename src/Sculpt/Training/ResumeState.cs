using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sculpt.Training;

/// <summary>Reading a run's resume state: any defect becomes one line naming the file, never a crash.</summary>
public static class ResumeState
{
    public static void Read(string path, Action read)
    {
        try { read(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or IOException or InvalidDataException
            or ArgumentException or NotSupportedException or System.Runtime.InteropServices.ExternalException)
        {
            var problem = Common.Messages.OneLine(e.Message);
            if (problem.StartsWith(path + ": ")) problem = problem[(path.Length + 2)..]; // named once
            throw new InvalidDataException($"{path}: corrupt resume state ({problem}); start again without --resume");
        }
    }

    /// <summary>
    /// Refuses to resume a run made with anything else than <paramref name="identity"/> (the model, the data and the
    /// options its saved work depends on), naming the first difference. State written before runs recorded it
    /// (<paramref name="madeWith"/> null) resumes as it always did.
    /// </summary>
    public static void CheckMadeWith(string statePath, JsonObject? madeWith, JsonObject identity, string options)
    {
        if (madeWith is null) return;
        foreach (var (key, value) in identity)
        {
            string now = value?.ToJsonString() ?? "null", then = madeWith[key]?.ToJsonString() ?? "(not recorded)";
            if (now != then)
                throw new InvalidDataException($"{statePath}: the run was made with {key} {then}, this command gives {now}; "
                    + $"resume with the run's {options}, or start again without --resume");
        }
    }

    /// <summary>The "made_with" object of a state file, if it has one.</summary>
    public static JsonObject? MadeWith(JsonObject state) =>
        state["made_with"] switch { null => null, JsonObject m => m, _ => throw new JsonException("made_with is not an object") };

    public static int Int(JsonObject state, string key) =>
        state[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw new JsonException($"{key} missing or not an integer");
}
