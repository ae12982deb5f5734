namespace Sculpt.Common;

/// <summary>
/// The fixed input every timing run feeds a model: values in [0, 1) that vary along a row, the same for every
/// executor so that two timed alternately do the same work.
/// </summary>
public static class TimingInput
{
    public static float[] Of(long count)
    {
        var input = new float[count];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 97) / 97f;
        return input;
    }
}
