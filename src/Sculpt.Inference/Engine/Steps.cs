using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sculpt.Graph;

namespace Sculpt.Engine;

/// <summary>
/// Convolution with batch norm folded into its weights and a ReLU / clip / leaky ReLU fused into its epilogue.
/// Groups 1, stride 1, dilation 1 and rows of at least one vector run a direct kernel register-blocked over output
/// channels and pixel vectors (4 × 2, 2 × 4 or 1 × 4; for a 3-row kernel the last one to three channels run down
/// columns of four output rows, and with 32 vector registers the blocks of four too) of the widest hardware width
/// the rows fill (512, 256 or 128 bits); the input — or the parts of a concatenation it replaces — copied once into
/// a zero-bordered scratch when
/// padded. Other groups-1 convolutions vectorise over output channels; grouped ones run the plain loop.
/// </summary>
internal sealed class ConvStep : Step
{
    public float[] Weight;
    public float[] Bias;
    private readonly int _kh, _kw, _groups;
    private readonly int[] _stride, _pad, _dilation;
    public float Lo = float.NegativeInfinity, Hi = float.PositiveInfinity, NegativeSlope = 1;
    public bool HasEpilogue;
    private float[] _packed = [];
    private int[] _inAt = [], _outAt = [];
    // tops of the column blocks (ColumnRows output rows at one pixel vector) for the channels that run down columns
    private int[] _columnIn = [], _columnOut = [];
    // the blocks of four output channels run down the columns too (Column4: only with 32 vector registers)
    private bool _fourChannelColumns;
    private bool _direct, _acrossChannels;
    private int _lanes; // floats per vector of the direct kernel
    // the direct kernel's vectors run along the padded input's rows wrapped into one another (see PlanPositions);
    // staged: their output goes through the scratch, since the output's layout does not have the padded row's width
    private bool _wrapped, _staged;
    private const int ChunkVectors = 4;

    /// <summary>
    /// The input as the convolution sees it. After <see cref="ReadConcatenation"/> it is a concatenation that is never
    /// materialised: <see cref="Step.Inputs"/> are then its parts, copied straight into the zero-bordered scratch.
    /// </summary>
    public Value In { get; private set; }

    public ConvStep(Value x, Value y, float[] weight, float[]? bias, int kh, int kw, int[] stride, int[] pad, int[] dilation, int groups)
    {
        Inputs = [x]; In = x; Output = y; Weight = weight; Bias = bias ?? new float[y.C];
        _kh = kh; _kw = kw; _stride = stride; _pad = pad; _dilation = dilation; _groups = groups;
    }

    public override long Macs => (long)Output.Size * (In.C / _groups) * _kh * _kw;
    public override string Name => $"Conv {_kh}×{_kw} ({Kernel})";
    private string Kernel => !_direct ? _acrossChannels ? "channel vectors" : "plain"
        : $"{32 * _lanes}-bit pixel vectors{(!_wrapped ? "" : _staged ? ", rows wrapped via scratch" : ", rows wrapped")}"
          + (_columnIn.Length == 0 ? "" : _fourChannelColumns ? ", in columns" : $", {Output.C % 4} in columns");

    /// <summary>Whether this convolution reads its input zero-bordered (direct and padded): copied, or stored so.</summary>
    public bool ReadsPaddedInput => _direct && (_pad[0] > 0 || _pad[1] > 0);
    public bool IsDirect => _direct;
    public IReadOnlyList<int> Padding => _pad;
    /// <summary>The input is stored with this convolution's zero border by its producer: nothing to copy.</summary>
    private bool ReadsBordered => Inputs.Length == 1 && Inputs[0].Border > 0;
    /// <summary>The input (or the parts it replaces) is copied into the zero-bordered scratch on every run.</summary>
    private bool CopiesInput => ReadsPaddedInput && !ReadsBordered;

    /// <summary>
    /// Reads the parts of <paramref name="concat"/> (whose only reader this is) instead of its output: the copy into
    /// the padded scratch writes each part to its channels, so the concatenated tensor is never written.
    /// </summary>
    public void ReadConcatenation(ConcatStep concat)
    {
        if (!ReadsPaddedInput || concat.Output != In)
            throw new InvalidOperationException("only a padded direct convolution reads the parts of its input");
        Inputs = concat.Inputs;
    }

    /// <summary>Folds y = x·scale + shift (a batch norm) that follows this convolution into its weights.</summary>
    public void Fold(float[] scale, float[] shift)
    {
        int per = Weight.Length / Output.C;
        for (int o = 0; o < Output.C; o++)
        {
            for (int i = 0; i < per; i++) Weight[o * per + i] *= scale[o];
            Bias[o] = Bias[o] * scale[o] + shift[o];
        }
    }

    /// <summary>Scratch floats per image this step needs: the zero-bordered input copy, then the staged output.</summary>
    public int ScratchSize => PaddedInputSize + (_staged ? Output.C * StagedPlane : 0);
    private int PaddedInputSize => CopiesInput ? In.C * PaddedHeight * PaddedWidth : 0;
    private int PaddedHeight => In.H + 2 * _pad[0];
    private int PaddedWidth => In.W + 2 * _pad[1];
    /// <summary>A staged output plane: the output's rows at the padded input's row length.</summary>
    private int StagedPlane => Output.H * PaddedWidth;

    /// <summary>
    /// Chooses the kernel and packs the weights; <paramref name="maxLanes"/> caps the vector width (floats) of the
    /// direct kernel, which is otherwise the widest of <see cref="VectorWidths.Accelerated"/> that the rows fill.
    /// </summary>
    public void Prepare(int maxLanes = int.MaxValue)
    {
        int widest = VectorWidths.Widest(int.MaxValue, maxLanes);
        (_lanes, _wrapped) = _groups == 1 && _stride is [1, 1] && _dilation is [1, 1] ? PixelVectors(maxLanes) : (0, false);
        _direct = _lanes > 0;
        _acrossChannels = !_direct && _groups == 1;
        if (_acrossChannels)
        {
            _lanes = widest;
            PackAcrossChannels();
        }
        if (!_direct) return;
        // [block of 4 output channels][input channel][ky][kx][4]: the four weights one input sample meets, side by side
        int ic = In.C, k = _kh * _kw, blocks = Output.C / 4;
        _packed = new float[blocks * ic * k * 4];
        for (int b = 0; b < blocks; b++)
            for (int c = 0; c < ic; c++)
                for (int t = 0; t < k; t++)
                    for (int j = 0; j < 4; j++) _packed[((b * ic + c) * k + t) * 4 + j] = Weight[((b * 4 + j) * ic + c) * k + t];
    }

    /// <summary>
    /// The vector width and layout of the direct kernel that cover the output in the fewest vectors (a vector of any
    /// width issues at the same rate on the CPUs measured): whole vectors along each row, or — for maps whose rows
    /// fill a vector badly, a U-Net's 7×7 and 14×14 bottom — vectors running on across the rows of the padded plane,
    /// which compute the padding columns as well. Seven-pixel rows, 8-float vectors: 8 vectors wrapped against 14
    /// 4-float vectors along the rows. Wrapping must save a quarter of the vectors: its output may go through the
    /// scratch, and a 28×28 layer that saved 6% (105 vectors against 112) ran 0.0076 → 0.0092 ms staged.
    /// </summary>
    private (int Lanes, bool Wrapped) PixelVectors(int maxLanes)
    {
        int span = WrappedSpan;
        (int Lanes, bool Wrapped, long Vectors) best = (0, false, long.MaxValue);
        foreach (int lanes in VectorWidths.Accelerated.Where(l => l <= maxLanes))
        {
            // ties go to the row layout (nothing staged) and to the wider vector (the list is widest first)
            if (Output.W >= lanes && Output.H * ((Output.W + lanes - 1) / lanes) is var rows && rows < best.Vectors)
                best = (lanes, false, rows);
            if (span >= lanes && (span + lanes - 1) / lanes is var wrapped
                && (best.Vectors == long.MaxValue || 4L * wrapped <= 3 * best.Vectors)) best = (lanes, true, wrapped);
        }
        return (best.Lanes, best.Wrapped);
    }

    /// <summary>Floats from the first output pixel to the last one along the padded input's rows.</summary>
    private int WrappedSpan => (Output.H - 1) * PaddedWidth + Output.W;

    public override unsafe void Run(Frame f)
    {
        var x = f.Of(Inputs[0]); var y = f.Of(Output);
        if (_acrossChannels)
        {
            fixed (float* xp = x, yp = y, wp = _packed, bp = Bias)
                switch (_lanes)
                {
                    case 16: AcrossChannels<Lanes512>(xp, yp, wp, bp); break;
                    case 8: AcrossChannels<Lanes256>(xp, yp, wp, bp); break;
                    default: AcrossChannels<Lanes128>(xp, yp, wp, bp); break;
                }
            return;
        }
        if (!_direct) { Plain(x, y); return; }
        fixed (float* xp = x, yp = y, scratch = f.Scratch, wp = _packed, bp = Bias, wAll = Weight)
        {
            float* src = xp;
            if (CopiesInput)
            {
                int first = 0;
                foreach (var part in Inputs)
                {
                    fixed (float* pp = f.Of(part))
                        switch (_lanes)
                        {
                            case 16: CopyBordered<Lanes512>(pp, part.C, first, scratch); break;
                            case 8: CopyBordered<Lanes256>(pp, part.C, first, scratch); break;
                            default: CopyBordered<Lanes128>(pp, part.C, first, scratch); break;
                        }
                    first += part.C;
                }
                src = scratch;
            }
            float* to = _staged ? scratch + PaddedInputSize : yp;
            int plane = _staged ? StagedPlane : Output.Stored / Output.C;
            switch (_lanes)
            {
                case 16: Direct<Lanes512>(src, to, plane, wp, bp, wAll); break;
                case 8: Direct<Lanes256>(src, to, plane, wp, bp, wAll); break;
                default: Direct<Lanes128>(src, to, plane, wp, bp, wAll); break;
            }
            if (_staged) Unstage(to, yp);
            if (Output.Border > 0) ClearBorder(yp, Output);
        }
    }

    /// <summary>
    /// <paramref name="channels"/> planes of <paramref name="x"/> into the zero-bordered scratch from channel
    /// <paramref name="first"/> on; only the border needs zeros, the interior is overwritten with the input.
    /// Rows go in whole vectors (the last overlapping the one before) and border samples one by one.
    /// </summary>
    private unsafe void CopyBordered<TV>(float* x, int channels, int first, float* scratch) where TV : struct, ILanes<TV>
    {
        int h = In.H, w = In.W, ph = _pad[0], pw = _pad[1], hp = PaddedHeight, wp = PaddedWidth, vl = TV.Count;
        for (int c = 0; c < channels; c++)
        {
            float* padded = scratch + (first + c) * hp * wp;
            new Span<float>(padded, ph * wp).Clear();
            new Span<float>(padded + (ph + h) * wp, ph * wp).Clear();
            for (int r = 0; r < h; r++)
            {
                float* row = padded + (r + ph) * wp, from = x + (c * h + r) * w;
                for (int j = 0; j < pw; j++) { row[j] = 0; row[pw + w + j] = 0; }
                if (w < vl) { for (int j = 0; j < w; j++) row[pw + j] = from[j]; continue; }
                for (int j = 0; j < w; j += vl)
                {
                    int at = Math.Min(j, w - vl);
                    TV.Store(row + pw + at, TV.Load(from + at));
                }
            }
        }
    }

    /// <summary>The staged output's rows (padded-row length apart) to the output's layout.</summary>
    private unsafe void Unstage(float* staged, float* y)
    {
        int b = Output.Border, ho = Output.H, wo = Output.W, wb = wo + 2 * b, wp = PaddedWidth;
        for (int c = 0; c < Output.C; c++)
            for (int r = 0; r < ho; r++)
                new Span<float>(staged + (c * ho + r) * wp, wo).CopyTo(new Span<float>(y + (c * (ho + 2 * b) + r + b) * wb + b, wo));
    }

    private unsafe void Direct<TV>(float* src, float* y, int plane, float* packed, float* bias, float* weight) where TV : struct, ILanes<TV>
    {
        int ic = In.C, hp = PaddedHeight, wp = PaddedWidth, k = _kh * _kw, blocks = Output.C / 4;
        int count = _inAt.Length;
        fixed (int* inAt = _inAt, outAt = _outAt)
        {
            for (int b = 0; b < blocks && !_fourChannelColumns; b++)
            {
                float* wb = packed + b * ic * k * 4;
                float* yb = y + 4 * b * plane;
                for (int i = 0; i < count; i += 2)
                    Block4x2<TV>(src + inAt[i], src + inAt[i + 1], hp, wp, ic, wb, bias + 4 * b, yb + outAt[i], yb + outAt[i + 1], plane);
            }
            if (_columnIn.Length > 0)
            {
                Columns<TV>(src, y, plane, packed, weight, bias);
                return;
            }
            int o = blocks * 4;
            for (; o + 2 <= Output.C; o += 2)
                for (int i = 0; i < count; i += 4)
                    Block2x4<TV>(src, inAt + i, hp, wp, ic, weight + o * ic * k, weight + (o + 1) * ic * k, bias[o], bias[o + 1],
                        y + o * plane, outAt + i, plane);
            for (; o < Output.C; o++)
                for (int i = 0; i < count; i += 4) Block1x4<TV>(src, inAt + i, hp, wp, ic, weight + o * ic * k, bias[o], y + o * plane,
                    outAt + i);
        }
    }

    /// <summary>The pixel positions the direct kernel writes, once the output's layout (its border) is known.</summary>
    public void PlanOutput(bool fourChannelColumns)
    {
        if (!_direct) return;
        // wrapped vectors write the padding columns too: in place only where those are the output's own border columns
        _staged = _wrapped && Output.W + 2 * Output.Border != PaddedWidth;
        PlanPositions(PaddedWidth);
        PlanColumns(fourChannelColumns);
    }

    /// <summary>
    /// The output plane as a list of pixel vectors — each row in whole vectors, its last one overlapping the one
    /// before rather than leaving a scalar tail — padded to a multiple of four by repeating the last (an idempotent
    /// second write). Kernels take four (or two) of them at a time, from one row or from several, so that four
    /// independent chains of multiply-adds are in flight even on a 14-pixel map.
    /// </summary>
    private void PlanPositions(int wp)
    {
        int wo = Output.W, vl = _lanes, b = Output.Border;
        var input = new List<int>(); var output = new List<int>();
        if (_wrapped)
        {
            // from the first output pixel to the last along the padded rows, the last vector overlapping the one
            // before: every read stays inside the padded input, every write inside the output's rows and border
            int span = WrappedSpan, at0 = _staged ? 0 : b * wp + b;
            for (int q = 0; q < span; q += vl)
            {
                int at = Math.Min(q, span - vl);
                input.Add(at); output.Add(at0 + at);
            }
        }
        else
            for (int oy = 0; oy < Output.H; oy++)
                for (int ox = 0; ox < wo; ox += vl)
                {
                    int at = Math.Min(ox, wo - vl);
                    input.Add(oy * wp + at); output.Add((oy + b) * (wo + 2 * b) + b + at);
                }
        while (input.Count % 4 != 0) { input.Add(input[^1]); output.Add(output[^1]); }
        _inAt = input.ToArray(); _outAt = output.ToArray();
    }

    /// <summary>Output rows of one column block: each input row is loaded once and meets every kernel row it feeds.</summary>
    private const int ColumnRows = 4;

    /// <summary>
    /// Column blocks for the output channels left after the blocks of four (one to three): a layer of a pruned U-Net
    /// with one or two output channels loads an input vector for every one or two multiply-adds along a row, so it is
    /// bound by loads. Down a column of <see cref="ColumnRows"/> output rows of a 3-row kernel, each of the
    /// ColumnRows + 2 input rows is loaded once for up to three multiply-adds per channel. Row layout only (not
    /// wrapped), at least ColumnRows rows; the last block overlaps the one before, as the last vector of a row does.
    /// </summary>
    private void PlanColumns(bool fourChannelColumns)
    {
        _columnIn = []; _columnOut = [];
        _fourChannelColumns = false;
        if (_wrapped || _kh != 3 || Output.H < ColumnRows || (Output.C % 4 == 0 && !fourChannelColumns)) return;
        _fourChannelColumns = fourChannelColumns;
        int wo = Output.W, ho = Output.H, vl = _lanes, b = Output.Border, wp = PaddedWidth;
        var input = new List<int>(); var output = new List<int>();
        for (int ox = 0; ox < wo; ox += vl)
        {
            int at = Math.Min(ox, wo - vl);
            for (int oy = 0; oy < ho; oy += ColumnRows)
            {
                int top = Math.Min(oy, ho - ColumnRows);
                input.Add(top * wp + at); output.Add((top + b) * (wo + 2 * b) + b + at);
            }
        }
        // Column1 takes blocks in pairs: an odd last one is paired with itself (an idempotent second write)
        if (input.Count % 2 != 0) { input.Add(input[^1]); output.Add(output[^1]); }
        _columnIn = input.ToArray(); _columnOut = output.ToArray();
    }

    /// <summary>
    /// The output channels that run down columns: the blocks of four (packed weights) when <see cref="_fourChannelColumns"/>,
    /// then the one to three left, two at a time.
    /// </summary>
    private unsafe void Columns<TV>(float* src, float* y, int plane, float* packed, float* weight, float* bias)
        where TV : struct, ILanes<TV>
    {
        int ic = In.C, planeIn = PaddedHeight * PaddedWidth, k = _kh * _kw, rowIn = PaddedWidth;
        int rowOut = Output.W + 2 * Output.Border, blocks = Output.C / 4;
        fixed (int* inAt = _columnIn, outAt = _columnOut)
        {
            for (int b = 0; b < blocks && _fourChannelColumns; b++)
                for (int i = 0; i < _columnIn.Length; i++)
                    Column4<TV>(src + inAt[i], planeIn, rowIn, ic, packed + b * ic * k * 4, bias + 4 * b, y + 4 * b * plane + outAt[i],
                        rowOut, plane);
            int o = blocks * 4;
            for (; o + 2 <= Output.C; o += 2)
                for (int i = 0; i < _columnIn.Length; i++)
                    Column2<TV>(src + inAt[i], planeIn, rowIn, ic, weight + o * ic * k, weight + (o + 1) * ic * k, bias[o], bias[o + 1],
                        y + o * plane + outAt[i], rowOut, plane);
            if (o < Output.C)
                for (int i = 0; i < _columnIn.Length; i += 2)
                    Column1<TV>(src + inAt[i], src + inAt[i + 1], planeIn, rowIn, ic, weight + o * ic * k, bias[o],
                        y + o * plane + outAt[i], y + o * plane + outAt[i + 1], rowOut);
        }
    }

    /// <summary>
    /// Four output rows of four channels (a packed block) at one pixel vector, 3-row kernel: six input rows and twelve
    /// weights for 48 multiply-adds per tap column. Sixteen accumulators and twelve weights: only with AVX-512's or ARM64's
    /// 32 vector registers (<see cref="VectorWidths.ThirtyTwoRegisters"/>); with 16 they would spill.
    /// </summary>
    private unsafe void Column4<TV>(float* p, int planeIn, int rowIn, int ic, float* w, float* bias, float* y, int rowOut, int plane)
        where TV : struct, ILanes<TV>
    {
        TV a00 = TV.Broadcast(bias[0]), a01 = a00, a02 = a00, a03 = a00;
        TV a10 = TV.Broadcast(bias[1]), a11 = a10, a12 = a10, a13 = a10;
        TV a20 = TV.Broadcast(bias[2]), a21 = a20, a22 = a20, a23 = a20;
        TV a30 = TV.Broadcast(bias[3]), a31 = a30, a32 = a30, a33 = a30;
        int kw = _kw;
        for (int c = 0; c < ic; c++, p += planeIn, w += 8 * kw)
            for (int kx = 0; kx < kw; kx++, w += 4)
            {
                float* r = p + kx;
                TV f00 = TV.Broadcast(w[0]), f01 = TV.Broadcast(w[4 * kw + 0]), f02 = TV.Broadcast(w[8 * kw + 0]);
                TV f10 = TV.Broadcast(w[1]), f11 = TV.Broadcast(w[4 * kw + 1]), f12 = TV.Broadcast(w[8 * kw + 1]);
                TV f20 = TV.Broadcast(w[2]), f21 = TV.Broadcast(w[4 * kw + 2]), f22 = TV.Broadcast(w[8 * kw + 2]);
                TV f30 = TV.Broadcast(w[3]), f31 = TV.Broadcast(w[4 * kw + 3]), f32 = TV.Broadcast(w[8 * kw + 3]);
                var u0 = TV.Load(r);
                a00 = TV.MultiplyAdd(u0, f00, a00);
                a10 = TV.MultiplyAdd(u0, f10, a10);
                a20 = TV.MultiplyAdd(u0, f20, a20);
                a30 = TV.MultiplyAdd(u0, f30, a30);
                var u1 = TV.Load(r + rowIn);
                a01 = TV.MultiplyAdd(u1, f00, a01); a00 = TV.MultiplyAdd(u1, f01, a00);
                a11 = TV.MultiplyAdd(u1, f10, a11); a10 = TV.MultiplyAdd(u1, f11, a10);
                a21 = TV.MultiplyAdd(u1, f20, a21); a20 = TV.MultiplyAdd(u1, f21, a20);
                a31 = TV.MultiplyAdd(u1, f30, a31); a30 = TV.MultiplyAdd(u1, f31, a30);
                var u2 = TV.Load(r + 2 * rowIn);
                a02 = TV.MultiplyAdd(u2, f00, a02); a01 = TV.MultiplyAdd(u2, f01, a01); a00 = TV.MultiplyAdd(u2, f02, a00);
                a12 = TV.MultiplyAdd(u2, f10, a12); a11 = TV.MultiplyAdd(u2, f11, a11); a10 = TV.MultiplyAdd(u2, f12, a10);
                a22 = TV.MultiplyAdd(u2, f20, a22); a21 = TV.MultiplyAdd(u2, f21, a21); a20 = TV.MultiplyAdd(u2, f22, a20);
                a32 = TV.MultiplyAdd(u2, f30, a32); a31 = TV.MultiplyAdd(u2, f31, a31); a30 = TV.MultiplyAdd(u2, f32, a30);
                var u3 = TV.Load(r + 3 * rowIn);
                a03 = TV.MultiplyAdd(u3, f00, a03); a02 = TV.MultiplyAdd(u3, f01, a02); a01 = TV.MultiplyAdd(u3, f02, a01);
                a13 = TV.MultiplyAdd(u3, f10, a13); a12 = TV.MultiplyAdd(u3, f11, a12); a11 = TV.MultiplyAdd(u3, f12, a11);
                a23 = TV.MultiplyAdd(u3, f20, a23); a22 = TV.MultiplyAdd(u3, f21, a22); a21 = TV.MultiplyAdd(u3, f22, a21);
                a33 = TV.MultiplyAdd(u3, f30, a33); a32 = TV.MultiplyAdd(u3, f31, a32); a31 = TV.MultiplyAdd(u3, f32, a31);
                var u4 = TV.Load(r + 4 * rowIn);
                a03 = TV.MultiplyAdd(u4, f01, a03); a02 = TV.MultiplyAdd(u4, f02, a02);
                a13 = TV.MultiplyAdd(u4, f11, a13); a12 = TV.MultiplyAdd(u4, f12, a12);
                a23 = TV.MultiplyAdd(u4, f21, a23); a22 = TV.MultiplyAdd(u4, f22, a22);
                a33 = TV.MultiplyAdd(u4, f31, a33); a32 = TV.MultiplyAdd(u4, f32, a32);
                var u5 = TV.Load(r + 5 * rowIn);
                a03 = TV.MultiplyAdd(u5, f02, a03);
                a13 = TV.MultiplyAdd(u5, f12, a13);
                a23 = TV.MultiplyAdd(u5, f22, a23);
                a33 = TV.MultiplyAdd(u5, f32, a33);
            }
        StoreColumn(y, rowOut, a00, a01, a02, a03);
        StoreColumn(y + plane, rowOut, a10, a11, a12, a13);
        StoreColumn(y + 2 * plane, rowOut, a20, a21, a22, a23);
        StoreColumn(y + 3 * plane, rowOut, a30, a31, a32, a33);
    }

    /// <summary>A column block's four output rows, through the epilogue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe void StoreColumn<TV>(float* y, int rowOut, TV a0, TV a1, TV a2, TV a3) where TV : struct, ILanes<TV>
    {
        TV.Store(y, Epilogue(a0)); TV.Store(y + rowOut, Epilogue(a1));
        TV.Store(y + 2 * rowOut, Epilogue(a2)); TV.Store(y + 3 * rowOut, Epilogue(a3));
    }

    /// <summary>Four output rows of two channels at one pixel vector, 3-row kernel: six input rows, 24 multiply-adds per tap
    /// column.</summary>
    private unsafe void Column2<TV>(float* p, int planeIn, int rowIn, int ic, float* w0, float* w1, float bias0, float bias1, float* y,
        int rowOut, int plane) where TV : struct, ILanes<TV>
    {
        TV a0 = TV.Broadcast(bias0), a1 = a0, a2 = a0, a3 = a0, b0 = TV.Broadcast(bias1), b1 = b0, b2 = b0, b3 = b0;
        int kw = _kw, k = 3 * kw;
        for (int c = 0; c < ic; c++, p += planeIn, w0 += k, w1 += k)
            for (int kx = 0; kx < kw; kx++)
            {
                float* r = p + kx;
                TV f0 = TV.Broadcast(w0[kx]), f1 = TV.Broadcast(w0[kw + kx]), f2 = TV.Broadcast(w0[2 * kw + kx]);
                TV g0 = TV.Broadcast(w1[kx]), g1 = TV.Broadcast(w1[kw + kx]), g2 = TV.Broadcast(w1[2 * kw + kx]);
                var u = TV.Load(r);
                a0 = TV.MultiplyAdd(u, f0, a0); b0 = TV.MultiplyAdd(u, g0, b0);
                u = TV.Load(r + rowIn);
                a0 = TV.MultiplyAdd(u, f1, a0); b0 = TV.MultiplyAdd(u, g1, b0);
                a1 = TV.MultiplyAdd(u, f0, a1); b1 = TV.MultiplyAdd(u, g0, b1);
                u = TV.Load(r + 2 * rowIn);
                a0 = TV.MultiplyAdd(u, f2, a0); b0 = TV.MultiplyAdd(u, g2, b0);
                a1 = TV.MultiplyAdd(u, f1, a1); b1 = TV.MultiplyAdd(u, g1, b1);
                a2 = TV.MultiplyAdd(u, f0, a2); b2 = TV.MultiplyAdd(u, g0, b2);
                u = TV.Load(r + 3 * rowIn);
                a1 = TV.MultiplyAdd(u, f2, a1); b1 = TV.MultiplyAdd(u, g2, b1);
                a2 = TV.MultiplyAdd(u, f1, a2); b2 = TV.MultiplyAdd(u, g1, b2);
                a3 = TV.MultiplyAdd(u, f0, a3); b3 = TV.MultiplyAdd(u, g0, b3);
                u = TV.Load(r + 4 * rowIn);
                a2 = TV.MultiplyAdd(u, f2, a2); b2 = TV.MultiplyAdd(u, g2, b2);
                a3 = TV.MultiplyAdd(u, f1, a3); b3 = TV.MultiplyAdd(u, g1, b3);
                u = TV.Load(r + 5 * rowIn);
                a3 = TV.MultiplyAdd(u, f2, a3); b3 = TV.MultiplyAdd(u, g2, b3);
            }
        StoreColumn(y, rowOut, a0, a1, a2, a3);
        StoreColumn(y + plane, rowOut, b0, b1, b2, b3);
    }

    /// <summary>
    /// Two column blocks (tops <paramref name="p"/> and <paramref name="q"/>) of one channel, 3-row kernel: eight
    /// independent chains of multiply-adds, as a single block's four would leave half the FMA units waiting.
    /// </summary>
    private unsafe void Column1<TV>(float* p, float* q, int planeIn, int rowIn, int ic, float* w, float bias, float* y, float* z,
        int rowOut) where TV : struct, ILanes<TV>
    {
        TV a0 = TV.Broadcast(bias), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int kw = _kw, k = 3 * kw;
        for (int c = 0; c < ic; c++, p += planeIn, q += planeIn, w += k)
            for (int kx = 0; kx < kw; kx++)
            {
                float* r = p + kx, s = q + kx;
                TV f0 = TV.Broadcast(w[kx]), f1 = TV.Broadcast(w[kw + kx]), f2 = TV.Broadcast(w[2 * kw + kx]);
                var u = TV.Load(r); var v = TV.Load(s);
                a0 = TV.MultiplyAdd(u, f0, a0); b0 = TV.MultiplyAdd(v, f0, b0);
                u = TV.Load(r + rowIn); v = TV.Load(s + rowIn);
                a0 = TV.MultiplyAdd(u, f1, a0); a1 = TV.MultiplyAdd(u, f0, a1);
                b0 = TV.MultiplyAdd(v, f1, b0); b1 = TV.MultiplyAdd(v, f0, b1);
                u = TV.Load(r + 2 * rowIn); v = TV.Load(s + 2 * rowIn);
                a0 = TV.MultiplyAdd(u, f2, a0); a1 = TV.MultiplyAdd(u, f1, a1); a2 = TV.MultiplyAdd(u, f0, a2);
                b0 = TV.MultiplyAdd(v, f2, b0); b1 = TV.MultiplyAdd(v, f1, b1); b2 = TV.MultiplyAdd(v, f0, b2);
                u = TV.Load(r + 3 * rowIn); v = TV.Load(s + 3 * rowIn);
                a1 = TV.MultiplyAdd(u, f2, a1); a2 = TV.MultiplyAdd(u, f1, a2); a3 = TV.MultiplyAdd(u, f0, a3);
                b1 = TV.MultiplyAdd(v, f2, b1); b2 = TV.MultiplyAdd(v, f1, b2); b3 = TV.MultiplyAdd(v, f0, b3);
                u = TV.Load(r + 4 * rowIn); v = TV.Load(s + 4 * rowIn);
                a2 = TV.MultiplyAdd(u, f2, a2); a3 = TV.MultiplyAdd(u, f1, a3);
                b2 = TV.MultiplyAdd(v, f2, b2); b3 = TV.MultiplyAdd(v, f1, b3);
                u = TV.Load(r + 5 * rowIn); v = TV.Load(s + 5 * rowIn);
                a3 = TV.MultiplyAdd(u, f2, a3); b3 = TV.MultiplyAdd(v, f2, b3);
            }
        StoreColumn(y, rowOut, a0, a1, a2, a3);
        StoreColumn(z, rowOut, b0, b1, b2, b3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TV Epilogue<TV>(TV v) where TV : struct, ILanes<TV>
    {
        if (!HasEpilogue) return v;
        if (NegativeSlope != 1) v = TV.Leaky(v, NegativeSlope);
        return TV.Clamp(v, Lo, Hi);
    }

    private unsafe void Block4x2<TV>(float* p, float* q, int hp, int wp, int ic, float* w, float* bias, float* y0, float* y1, int plane)
        where TV : struct, ILanes<TV>
    {
        TV a0 = TV.Broadcast(bias[0]), a1 = TV.Broadcast(bias[1]), a2 = TV.Broadcast(bias[2]), a3 = TV.Broadcast(bias[3]);
        TV b0 = a0, b1 = a1, b2 = a2, b3 = a3;
        for (int c = 0; c < ic; c++, p += hp * wp, q += hp * wp)
            for (int ky = 0; ky < _kh; ky++)
            {
                float* rp = p + ky * wp, rq = q + ky * wp;
                for (int kx = 0; kx < _kw; kx++, w += 4)
                {
                    var u = TV.Load(rp + kx);
                    var v = TV.Load(rq + kx);
                    var w0 = TV.Broadcast(w[0]); a0 = TV.MultiplyAdd(u, w0, a0); b0 = TV.MultiplyAdd(v, w0, b0);
                    var w1 = TV.Broadcast(w[1]); a1 = TV.MultiplyAdd(u, w1, a1); b1 = TV.MultiplyAdd(v, w1, b1);
                    var w2 = TV.Broadcast(w[2]); a2 = TV.MultiplyAdd(u, w2, a2); b2 = TV.MultiplyAdd(v, w2, b2);
                    var w3 = TV.Broadcast(w[3]); a3 = TV.MultiplyAdd(u, w3, a3); b3 = TV.MultiplyAdd(v, w3, b3);
                }
            }
        TV.Store(y0, Epilogue(a0)); TV.Store(y1, Epilogue(b0));
        TV.Store(y0 + plane, Epilogue(a1)); TV.Store(y1 + plane, Epilogue(b1));
        TV.Store(y0 + 2 * plane, Epilogue(a2)); TV.Store(y1 + 2 * plane, Epilogue(b2));
        TV.Store(y0 + 3 * plane, Epilogue(a3)); TV.Store(y1 + 3 * plane, Epilogue(b3));
    }

    private unsafe void Block2x4<TV>(float* src, int* inAt, int hp, int wp, int ic, float* w0, float* w1, float bias0, float bias1,
        float* y, int* outAt, int plane) where TV : struct, ILanes<TV>
    {
        float* p0 = src + inAt[0], p1 = src + inAt[1], p2 = src + inAt[2], p3 = src + inAt[3];
        TV a0 = TV.Broadcast(bias0), a1 = a0, a2 = a0, a3 = a0, b0 = TV.Broadcast(bias1), b1 = b0, b2 = b0, b3 = b0;
        for (int c = 0; c < ic; c++)
        {
            int plane0 = c * hp * wp;
            for (int ky = 0; ky < _kh; ky++)
            {
                int row = plane0 + ky * wp;
                for (int kx = 0; kx < _kw; kx++, w0++, w1++)
                {
                    int at = row + kx;
                    var u0 = TV.Load(p0 + at); var u1 = TV.Load(p1 + at);
                    var u2 = TV.Load(p2 + at); var u3 = TV.Load(p3 + at);
                    var f = TV.Broadcast(*w0); var g = TV.Broadcast(*w1);
                    a0 = TV.MultiplyAdd(u0, f, a0); a1 = TV.MultiplyAdd(u1, f, a1);
                    a2 = TV.MultiplyAdd(u2, f, a2); a3 = TV.MultiplyAdd(u3, f, a3);
                    b0 = TV.MultiplyAdd(u0, g, b0); b1 = TV.MultiplyAdd(u1, g, b1);
                    b2 = TV.MultiplyAdd(u2, g, b2); b3 = TV.MultiplyAdd(u3, g, b3);
                }
            }
        }
        float* y1 = y + plane;
        TV.Store(y + outAt[0], Epilogue(a0)); TV.Store(y + outAt[1], Epilogue(a1));
        TV.Store(y + outAt[2], Epilogue(a2)); TV.Store(y + outAt[3], Epilogue(a3));
        TV.Store(y1 + outAt[0], Epilogue(b0)); TV.Store(y1 + outAt[1], Epilogue(b1));
        TV.Store(y1 + outAt[2], Epilogue(b2)); TV.Store(y1 + outAt[3], Epilogue(b3));
    }

    private unsafe void Block1x4<TV>(float* src, int* inAt, int hp, int wp, int ic, float* w, float bias, float* y, int* outAt)
        where TV : struct, ILanes<TV>
    {
        float* p0 = src + inAt[0], p1 = src + inAt[1], p2 = src + inAt[2], p3 = src + inAt[3];
        TV a0 = TV.Broadcast(bias), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < ic; c++)
        {
            int plane0 = c * hp * wp;
            for (int ky = 0; ky < _kh; ky++)
            {
                int row = plane0 + ky * wp;
                for (int kx = 0; kx < _kw; kx++, w++)
                {
                    int at = row + kx;
                    var f = TV.Broadcast(*w);
                    a0 = TV.MultiplyAdd(TV.Load(p0 + at), f, a0);
                    a1 = TV.MultiplyAdd(TV.Load(p1 + at), f, a1);
                    a2 = TV.MultiplyAdd(TV.Load(p2 + at), f, a2);
                    a3 = TV.MultiplyAdd(TV.Load(p3 + at), f, a3);
                }
            }
        }
        TV.Store(y + outAt[0], Epilogue(a0)); TV.Store(y + outAt[1], Epilogue(a1));
        TV.Store(y + outAt[2], Epilogue(a2)); TV.Store(y + outAt[3], Epilogue(a3));
    }

    /// <summary>
    /// [chunk of up to 4·VL output channels][input channel][ky][kx][4·VL]: for maps too narrow for a vector of
    /// pixels (the 7×7 and 14×14 bottom of a U-Net) and for strided or dilated convolutions, the vector runs over
    /// output channels instead, one input sample broadcast against the weights of all of them.
    /// </summary>
    private void PackAcrossChannels()
    {
        int ic = In.C, k = _kh * _kw, width = ChunkVectors * _lanes, chunks = (Output.C + width - 1) / width;
        _packed = new float[chunks * ic * k * width];
        for (int o = 0; o < Output.C; o++)
            for (int c = 0; c < ic; c++)
                for (int t = 0; t < k; t++) _packed[(((o / width) * ic + c) * k + t) * width + o % width] = Weight[(o * ic + c) * k + t];
    }

    private unsafe void AcrossChannels<TV>(float* x, float* y, float* packed, float* bias) where TV : struct, ILanes<TV>
    {
        var input = In;
        int ic = input.C, h = input.H, w = input.W, ho = Output.H, wo = Output.W, oc = Output.C, vl = TV.Count;
        int width = ChunkVectors * vl, k = _kh * _kw, plane = ho * wo;
        float* lanes = stackalloc float[width];
        for (int chunk = 0; chunk * width < oc; chunk++)
        {
            int first = chunk * width, count = Math.Min(width, oc - first), vectors = (count + vl - 1) / vl;
            float* wc = packed + chunk * ic * k * width;
            for (int i = 0; i < width; i++) lanes[i] = first + i < oc ? bias[first + i] : 0;
            TV b0 = TV.Load(lanes), b1 = TV.Load(lanes + vl);
            TV b2 = TV.Load(lanes + 2 * vl), b3 = TV.Load(lanes + 3 * vl);
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    TV a0 = b0, a1 = b1, a2 = b2, a3 = b3;
                    for (int ky = 0; ky < _kh; ky++)
                    {
                        int iy = oy * _stride[0] - _pad[0] + ky * _dilation[0];
                        if ((uint)iy >= (uint)h) continue;
                        for (int kx = 0; kx < _kw; kx++)
                        {
                            int ix = ox * _stride[1] - _pad[1] + kx * _dilation[1];
                            if ((uint)ix >= (uint)w) continue;
                            float* xs = x + iy * w + ix;
                            float* wt = wc + (ky * _kw + kx) * width;
                            for (int c = 0; c < ic; c++, xs += h * w, wt += k * width)
                            {
                                var v = TV.Broadcast(*xs);
                                a0 = TV.MultiplyAdd(v, TV.Load(wt), a0);
                                if (vectors > 1) a1 = TV.MultiplyAdd(v, TV.Load(wt + vl), a1);
                                if (vectors > 2)
                                {
                                    a2 = TV.MultiplyAdd(v, TV.Load(wt + 2 * vl), a2);
                                    a3 = TV.MultiplyAdd(v, TV.Load(wt + 3 * vl), a3);
                                }
                            }
                        }
                    }
                    Unsafe.WriteUnaligned(lanes, Epilogue(a0)); Unsafe.WriteUnaligned(lanes + vl, Epilogue(a1));
                    Unsafe.WriteUnaligned(lanes + 2 * vl, Epilogue(a2)); Unsafe.WriteUnaligned(lanes + 3 * vl, Epilogue(a3));
                    float* at = y + first * plane + oy * wo + ox;
                    for (int i = 0; i < count; i++) at[i * plane] = lanes[i];
                }
        }
    }

    private float Scalar(float v)
    {
        if (!HasEpilogue) return v;
        if (v < 0) v *= NegativeSlope;
        return Math.Min(Math.Max(v, Lo), Hi);
    }

    private void Plain(float[] x, float[] y)
    {
        var input = In;
        int icg = input.C / _groups, ocg = Output.C / _groups, ho = Output.H, wo = Output.W, h = input.H, w = input.W;
        for (int o = 0; o < Output.C; o++)
        {
            int g = o / ocg;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    float sum = Bias[o];
                    for (int ci = 0; ci < icg; ci++)
                    {
                        int c = g * icg + ci;
                        for (int ky = 0; ky < _kh; ky++)
                        {
                            int iy = oy * _stride[0] - _pad[0] + ky * _dilation[0];
                            if ((uint)iy >= (uint)h) continue;
                            for (int kx = 0; kx < _kw; kx++)
                            {
                                int ix = ox * _stride[1] - _pad[1] + kx * _dilation[1];
                                if ((uint)ix >= (uint)w) continue;
                                sum += x[(c * h + iy) * w + ix] * Weight[((o * icg + ci) * _kh + ky) * _kw + kx];
                            }
                        }
                    }
                    y[(o * ho + oy) * wo + ox] = Scalar(sum);
                }
        }
    }
}

/// <summary>Transposed convolution (weight [in, out/groups, kh, kw]): each input sample scattered into its output window.</summary>
internal sealed class ConvTransposeStep : Step
{
    private readonly Value _x;
    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly int _kh, _kw, _groups;
    private readonly int[] _stride, _pad, _dilation;

    public ConvTransposeStep(Value x, Value y, float[] weight, float[]? bias, int kh, int kw, int[] stride, int[] pad, int[] dilation,
        int groups)
    {
        Inputs = [x]; Output = y; _x = x; _weight = weight; _bias = bias;
        _kh = kh; _kw = kw; _stride = stride; _pad = pad; _dilation = dilation; _groups = groups;
    }

    private int _lanes; // floats per vector of the 2×2 up-convolution; 0: rows narrower than any vector

    public override long Macs => (long)_x.Size * (Output.C / _groups) * _kh * _kw;
    public override string Name => $"ConvTranspose {_kh}×{_kw}";

    /// <summary>The vector width (at most <paramref name="maxLanes"/> floats): the widest the input rows fill.</summary>
    public void Prepare(int maxLanes) => _lanes = VectorWidths.Widest(_x.W, maxLanes);

    public override void Run(Frame f)
    {
        if (_kh == 2 && _kw == 2 && _stride is [2, 2] && _pad is [0, 0] && _dilation is [1, 1] && _groups == 1 && Output.H == 2 * _x.H
            && Output.W == 2 * _x.W)
        {
            UpTwo(f);
            return;
        }
        var xs = f.Of(_x); var ys = f.Of(Output);
        int ic = _x.C, h = _x.H, w = _x.W, oc = Output.C, ho = Output.H, wo = Output.W, icg = ic / _groups, ocg = oc / _groups;
        for (int o = 0; o < oc; o++) ys.AsSpan(o * ho * wo, ho * wo).Fill(_bias?[o] ?? 0);
        for (int c = 0; c < ic; c++)
        {
            int g = c / icg;
            for (int ol = 0; ol < ocg; ol++)
            {
                int o = g * ocg + ol;
                for (int ky = 0; ky < _kh; ky++)
                    for (int kx = 0; kx < _kw; kx++)
                    {
                        float wt = _weight[((c * ocg + ol) * _kh + ky) * _kw + kx];
                        for (int iy = 0; iy < h; iy++)
                        {
                            int oy = iy * _stride[0] - _pad[0] + ky * _dilation[0];
                            if ((uint)oy >= (uint)ho) continue;
                            int xrow = (c * h + iy) * w, yrow = (o * ho + oy) * wo;
                            for (int ix = 0; ix < w; ix++)
                            {
                                int ox = ix * _stride[1] - _pad[1] + kx * _dilation[1];
                                if ((uint)ox < (uint)wo) ys[yrow + ox] += xs[xrow + ix] * wt;
                            }
                        }
                    }
            }
        }
    }

    /// <summary>
    /// The U-Net's up-convolution (2×2, stride 2): every input pixel makes one 2×2 output block, summed over input
    /// channels; a vector of input pixels at a time (the widest the row fills, the last overlapping the one
    /// before), their four results interleaved into the two output rows.
    /// </summary>
    private unsafe void UpTwo(Frame f)
    {
        switch (_lanes)
        {
            case 16: UpTwo<Lanes512>(f); break;
            case 8: UpTwo<Lanes256>(f); break;
            case 4: UpTwo<Lanes128>(f); break;
            default: UpTwoScalar(f); break;
        }
    }

    private unsafe void UpTwo<TV>(Frame f) where TV : struct, ILanes<TV>
    {
        var xs = f.Of(_x); var ys = f.Of(Output);
        int ic = _x.C, h = _x.H, w = _x.W, oc = Output.C, wo = Output.W, plane = h * w, vl = TV.Count;
        fixed (float* xn = xs, yn = ys, wb = _weight)
            for (int o = 0; o < oc; o++)
            {
                var b = TV.Broadcast(_bias?[o] ?? 0);
                for (int iy = 0; iy < h; iy++)
                {
                    float* top = yn + (o * 2 * h + 2 * iy) * wo, bottom = top + wo, xrow = xn + iy * w;
                    for (int i = 0; i < w; i += vl)
                    {
                        int ix = Math.Min(i, w - vl);
                        TV s00 = b, s01 = b, s10 = b, s11 = b;
                        for (int c = 0; c < ic; c++)
                        {
                            var v = TV.Load(xrow + c * plane + ix);
                            float* k = wb + (c * oc + o) * 4;
                            s00 = TV.MultiplyAdd(v, TV.Broadcast(k[0]), s00);
                            s01 = TV.MultiplyAdd(v, TV.Broadcast(k[1]), s01);
                            s10 = TV.MultiplyAdd(v, TV.Broadcast(k[2]), s10);
                            s11 = TV.MultiplyAdd(v, TV.Broadcast(k[3]), s11);
                        }
                        TV.StoreInterleaved(top + 2 * ix, s00, s01);
                        TV.StoreInterleaved(bottom + 2 * ix, s10, s11);
                    }
                }
            }
    }

    /// <summary>Rows narrower than any vector.</summary>
    private unsafe void UpTwoScalar(Frame f)
    {
        var xs = f.Of(_x); var ys = f.Of(Output);
        int ic = _x.C, h = _x.H, w = _x.W, oc = Output.C, wo = Output.W, plane = h * w;
        fixed (float* xn = xs, yn = ys, wb = _weight)
            for (int o = 0; o < oc; o++)
            {
                float b = _bias?[o] ?? 0;
                for (int iy = 0; iy < h; iy++)
                {
                    float* top = yn + (o * 2 * h + 2 * iy) * wo, bottom = top + wo, xrow = xn + iy * w;
                    for (int ix = 0; ix < w; ix++)
                    {
                        float s00 = b, s01 = b, s10 = b, s11 = b;
                        for (int c = 0; c < ic; c++)
                        {
                            float v = xrow[c * plane + ix];
                            float* k = wb + (c * oc + o) * 4;
                            s00 += v * k[0]; s01 += v * k[1]; s10 += v * k[2]; s11 += v * k[3];
                        }
                        top[2 * ix] = s00; top[2 * ix + 1] = s01; bottom[2 * ix] = s10; bottom[2 * ix + 1] = s11;
                    }
                }
            }
    }
}

/// <summary>y = x·scale[c] + shift[c]: a batch norm that no convolution could absorb.</summary>
internal sealed class AffineStep : Step
{
    public readonly float[] Scale, Shift;
    public AffineStep(Value x, Value y, float[] scale, float[] shift) { Inputs = [x]; Output = y; Scale = scale; Shift = shift; }
    public override string Name => "BatchNorm";

    public override void Run(Frame f)
    {
        var xs = f.Of(Inputs[0]); var ys = f.Of(Output);
        int plane = Output.Plane;
        for (int c = 0; c < Output.C; c++)
        {
            int at = c * plane;
            for (int i = 0; i < plane; i++) ys[at + i] = xs[at + i] * Scale[c] + Shift[c];
        }
    }
}

/// <summary>Instance norm (one group per channel) and group norm: statistics per image and group, then the per-channel affine.</summary>
internal sealed class GroupNormStep : Step
{
    private readonly int _groups;
    private readonly float[]? _gamma, _beta;
    private readonly double _eps;

    public GroupNormStep(Value x, Value y, int groups, float[]? gamma, float[]? beta, double eps)
    {
        Inputs = [x]; Output = y; _groups = groups; _gamma = gamma; _beta = beta; _eps = eps;
    }

    public override string Name => _groups == Output.C ? "InstanceNorm" : "GroupNorm";

    public override void Run(Frame f)
    {
        var xs = f.Of(Inputs[0]); var ys = f.Of(Output);
        int per = Output.C / _groups, plane = Output.Plane, count = per * plane;
        for (int g = 0; g < _groups; g++)
        {
            int at = g * per * plane;
            double sum = 0, sq = 0;
            for (int i = 0; i < count; i++) { double v = xs[at + i]; sum += v; sq += v * v; }
            double mean = sum / count, variance = Math.Max(0, sq / count - mean * mean);
            float inv = (float)(1 / Math.Sqrt(variance + _eps)), m = (float)mean;
            for (int c = 0; c < per; c++)
            {
                int ch = g * per + c;
                float gamma = _gamma?[ch] ?? 1, beta = _beta?[ch] ?? 0;
                for (int i = 0; i < plane; i++) ys[at + c * plane + i] = (xs[at + c * plane + i] - m) * inv * gamma + beta;
            }
        }
    }
}

internal sealed class UnaryStep : Step
{
    public readonly UnaryKind Kind;
    public readonly float A, B;

    public UnaryStep(Value x, Value y, UnaryKind kind, float a, float b)
    {
        Inputs = [x]; Output = y; Kind = kind; A = a; B = b;
    }

    public override string Name => Kind.ToString();

    public override void Run(Frame f)
    {
        var xs = f.Of(Inputs[0]); var ys = f.Of(Output);
        int total = Output.Size;
        switch (Kind)
        {
            case UnaryKind.Relu: for (int i = 0; i < total; i++) ys[i] = Math.Max(xs[i], 0f); break;
            case UnaryKind.LeakyRelu: for (int i = 0; i < total; i++) ys[i] = xs[i] < 0 ? xs[i] * A : xs[i]; break;
            case UnaryKind.Sigmoid: for (int i = 0; i < total; i++) ys[i] = 1f / (1f + MathF.Exp(-xs[i])); break;
            case UnaryKind.Tanh: for (int i = 0; i < total; i++) ys[i] = MathF.Tanh(xs[i]); break;
            case UnaryKind.Silu: for (int i = 0; i < total; i++) ys[i] = xs[i] / (1f + MathF.Exp(-xs[i])); break;
            case UnaryKind.HardSwish: for (int i = 0; i < total; i++) ys[i] = xs[i] * Math.Clamp(xs[i] / 6f + 0.5f, 0f, 1f); break;
            case UnaryKind.HardSigmoid: for (int i = 0; i < total; i++) ys[i] = Math.Clamp(A * xs[i] + B, 0f, 1f); break;
            case UnaryKind.Clip: for (int i = 0; i < total; i++) ys[i] = Math.Min(Math.Max(xs[i], A), B); break;
            case UnaryKind.Softmax:
                int c = Output.C, plane = Output.Plane;
                for (int p = 0; p < plane; p++)
                {
                    int at = p;
                    float max = float.NegativeInfinity, sum = 0;
                    for (int k = 0; k < c; k++) max = Math.Max(max, xs[at + k * plane]);
                    for (int k = 0; k < c; k++) { float e = MathF.Exp(xs[at + k * plane] - max); ys[at + k * plane] = e; sum += e; }
                    for (int k = 0; k < c; k++) ys[at + k * plane] /= sum;
                }
                break;
            default: throw new NotSupportedException(Kind.ToString());
        }
    }
}

internal sealed class PReluStep : Step
{
    private readonly float[] _slope;
    public PReluStep(Value x, Value y, float[] slope) { Inputs = [x]; Output = y; _slope = slope; }
    public override string Name => "PRelu";

    public override void Run(Frame f)
    {
        var xs = f.Of(Inputs[0]); var ys = f.Of(Output);
        int plane = Output.Plane;
        for (int c = 0; c < Output.C; c++)
        {
            float a = _slope[_slope.Length == 1 ? 0 : c];
            int at = c * plane;
            for (int i = 0; i < plane; i++) ys[at + i] = xs[at + i] < 0 ? xs[at + i] * a : xs[at + i];
        }
    }
}

/// <summary>Add, Sub, Mul, Div with broadcasting over channels or pixels (gates, per-channel constants, scalars).</summary>
internal sealed class BinaryStep : Step
{
    private readonly BinaryKind _kind;
    public BinaryStep(Value a, Value b, Value y, BinaryKind kind) { Inputs = [a, b]; Output = y; _kind = kind; }
    public override string Name => _kind.ToString();

    public override void Run(Frame f)
    {
        Value a = Inputs[0], b = Inputs[1];
        var xa = f.Of(a); var xb = f.Of(b); var ys = f.Of(Output);
        int c = Output.C, h = Output.H, w = Output.W;
        (int N, int C, int Y, int X) Strides(Value v) => (v.IsActivation ? v.Size : 0, v.C == 1 ? 0 : v.H * v.W, v.H == 1 ? 0 : v.W,
            v.W == 1 ? 0 : 1);
        var sa = Strides(a); var sb = Strides(b);
        for (int ch = 0; ch < c; ch++)
            for (int yy = 0; yy < h; yy++)
            {
                int ia = ch * sa.C + yy * sa.Y, ib = ch * sb.C + yy * sb.Y, o = (ch * h + yy) * w;
                for (int xx = 0; xx < w; xx++)
                {
                    float u = xa[ia + xx * sa.X], v = xb[ib + xx * sb.X];
                    ys[o + xx] = _kind switch { BinaryKind.Add => u + v, BinaryKind.Sub => u - v, BinaryKind.Mul => u * v, _ => u / v };
                }
            }
    }
}

/// <summary>Max pooling (padding counts as −∞) and average pooling (padding counted in the divisor, as PyTorch and the export
/// say).</summary>
internal sealed class PoolStep : Step
{
    private readonly int[] _k, _s, _p;
    private readonly bool _max;
    public PoolStep(Value x, Value y, int[] kernel, int[] stride, int[] pad, bool max)
    {
        Inputs = [x]; Output = y; _k = kernel; _s = stride; _p = pad; _max = max;
    }
    public override string Name => $"{(_max ? "MaxPool" : "AvgPool")} {_k[0]}×{_k[1]}";

    /// <summary>
    /// 2×2 windows, stride 2: eight outputs at a time with AVX2 (vertical maximum, then even against odd columns);
    /// output rows <paramref name="rowStride"/> apart, planes <paramref name="planeStride"/>, from <paramref name="at"/>.
    /// </summary>
    private static unsafe void MaxPoolTwo(float* xb, float* yb, int planes, int h, int w, int ho, int wo, int rowStride, int planeStride,
        int at)
    {
        int vectorised = Avx2.IsSupported ? wo / 8 * 8 : 0;
        for (int ch = 0; ch < planes; ch++)
            for (int oy = 0; oy < ho; oy++)
            {
                float* r0 = xb + ch * h * w + 2 * oy * w, r1 = r0 + w, y = yb + at + ch * planeStride + oy * rowStride;
                for (int ox = 0; ox < vectorised; ox += 8)
                {
                    var m0 = Avx.Max(Avx.LoadVector256(r0 + 2 * ox), Avx.LoadVector256(r1 + 2 * ox));
                    var m1 = Avx.Max(Avx.LoadVector256(r0 + 2 * ox + 8), Avx.LoadVector256(r1 + 2 * ox + 8));
                    // evens and odds of the 16 columns, each lane-ordered 0 1 4 5 | 2 3 6 7, put back in order
                    var even = Avx.Shuffle(m0, m1, 0b10_00_10_00);
                    var odd = Avx.Shuffle(m0, m1, 0b11_01_11_01);
                    var max = Avx.Max(even, odd).AsDouble();
                    Avx.Store(y + ox, Avx2.Permute4x64(max, 0b11_01_10_00).AsSingle());
                }
                for (int ox = vectorised; ox < wo; ox++)
                    y[ox] = Math.Max(Math.Max(r0[2 * ox], r0[2 * ox + 1]), Math.Max(r1[2 * ox], r1[2 * ox + 1]));
            }
    }

    /// <summary>The output may be stored zero-bordered for the convolution that reads it (<see cref="Value.Border"/>).</summary>
    public override unsafe void Run(Frame f)
    {
        var x = Inputs[0];
        var xs = f.Of(x); var ys = f.Of(Output);
        int h = x.H, w = x.W, ho = Output.H, wo = Output.W, b = Output.Border;
        int rowStride = wo + 2 * b, planeStride = (ho + 2 * b) * rowStride, at = b * rowStride + b;
        fixed (float* xb = xs, yb = ys)
        {
            if (_max && _k is [2, 2] && _s is [2, 2] && _p is [0, 0] && 2 * ho <= h && 2 * wo <= w)
                // the U-Net's 2×2 max pool: no padding, every window inside the input
                MaxPoolTwo(xb, yb, Output.C, h, w, ho, wo, rowStride, planeStride, at);
            else Generic(xs, ys, rowStride, planeStride, at);
            if (b > 0) ClearBorder(yb, Output);
        }
    }

    private void Generic(float[] xs, float[] ys, int rowStride, int planeStride, int at)
    {
        var x = Inputs[0];
        int h = x.H, w = x.W, ho = Output.H, wo = Output.W;
        for (int ch = 0; ch < Output.C; ch++)
        {
            int xi = ch * h * w, yi = at + ch * planeStride;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    int y0 = oy * _s[0] - _p[0], x0 = ox * _s[1] - _p[1];
                    int y1 = Math.Min(y0 + _k[0], h + _p[0]), x1 = Math.Min(x0 + _k[1], w + _p[1]);
                    int divisor = (y1 - y0) * (x1 - x0);
                    int ya = Math.Max(y0, 0), xa = Math.Max(x0, 0), yb = Math.Min(y1, h), xb = Math.Min(x1, w);
                    float acc = _max ? float.NegativeInfinity : 0;
                    for (int iy = ya; iy < yb; iy++)
                        for (int ix = xa; ix < xb; ix++)
                        {
                            float v = xs[xi + iy * w + ix];
                            acc = _max ? Math.Max(acc, v) : acc + v;
                        }
                    ys[yi + oy * rowStride + ox] = _max ? acc : acc / divisor;
                }
        }
    }
}

/// <summary>Adaptive average pooling with PyTorch's bins [⌊i·in/out⌋, ⌈(i+1)·in/out⌉).</summary>
internal sealed class AdaptivePoolStep : Step
{
    public AdaptivePoolStep(Value x, Value y) { Inputs = [x]; Output = y; }
    public override string Name => "AdaptiveAvgPool";

    public override void Run(Frame f)
    {
        var x = Inputs[0];
        var xs = f.Of(x); var ys = f.Of(Output);
        int h = x.H, w = x.W, ho = Output.H, wo = Output.W;
        for (int ch = 0; ch < Output.C; ch++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    int y0 = oy * h / ho, y1 = ((oy + 1) * h + ho - 1) / ho, x0 = ox * w / wo, x1 = ((ox + 1) * w + wo - 1) / wo;
                    float sum = 0;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) sum += xs[ch * h * w + iy * w + ix];
                    ys[ch * ho * wo + oy * wo + ox] = sum / ((y1 - y0) * (x1 - x0));
                }
    }
}

/// <summary>
/// ONNX Resize as the export writes it: nearest with asymmetric coordinates and floor, or linear with
/// pytorch_half_pixel or align_corners coordinates, in float as ONNX Runtime computes them.
/// </summary>
internal sealed class ResizeStep : Step
{
    private readonly bool _bilinear, _alignCorners;
    private readonly int[] _y0, _y1, _x0, _x1;
    private readonly float[] _dy, _dx;

    public ResizeStep(Value x, Value y, bool bilinear, bool alignCorners, float scaleY, float scaleX)
    {
        Inputs = [x]; Output = y; _bilinear = bilinear; _alignCorners = alignCorners;
        (_y0, _y1, _dy) = Axis(x.H, y.H, scaleY);
        (_x0, _x1, _dx) = Axis(x.W, y.W, scaleX);
    }

    public override string Name => _bilinear ? "Resize (linear)" : "Resize (nearest)";

    private (int[], int[], float[]) Axis(int length, int outLength, float scale)
    {
        var lo = new int[outLength]; var hi = new int[outLength]; var d = new float[outLength];
        for (int o = 0; o < outLength; o++)
        {
            if (!_bilinear)
            {
                lo[o] = hi[o] = Math.Min((int)MathF.Floor(o / scale), length - 1);
                continue;
            }
            float at = _alignCorners ? (outLength == 1 ? 0 : o * (float)(length - 1) / (outLength - 1))
                : (outLength > 1 ? (o + 0.5f) / scale - 0.5f : 0);
            at = Math.Clamp(at, 0, length - 1);
            lo[o] = Math.Min((int)at, length - 1);
            hi[o] = Math.Min(lo[o] + 1, length - 1);
            d[o] = lo[o] == hi[o] ? 0.5f : at - lo[o];
        }
        return (lo, hi, d);
    }

    public override void Run(Frame f)
    {
        var x = Inputs[0];
        var xs = f.Of(x); var ys = f.Of(Output);
        int h = x.H, w = x.W, ho = Output.H, wo = Output.W;
        for (int ch = 0; ch < Output.C; ch++)
        {
            int xi = ch * h * w, yi = ch * ho * wo;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    if (!_bilinear) { ys[yi + oy * wo + ox] = xs[xi + _y0[oy] * w + _x0[ox]]; continue; }
                    float dy1 = _dy[oy], dx1 = _dx[ox];
                    // equal neighbours (the edge) weigh ½ each, as ONNX Runtime's linear kernel does
                    float dy2 = _y0[oy] == _y1[oy] ? 0.5f : 1 - dy1, dx2 = _x0[ox] == _x1[ox] ? 0.5f : 1 - dx1;
                    int r0 = xi + _y0[oy] * w, r1 = xi + _y1[oy] * w;
                    ys[yi + oy * wo + ox] = dx2 * dy2 * xs[r0 + _x0[ox]] + dx1 * dy2 * xs[r0 + _x1[ox]]
                        + dx2 * dy1 * xs[r1 + _x0[ox]] + dx1 * dy1 * xs[r1 + _x1[ox]];
                }
        }
    }
}

/// <summary>Zero padding of the spatial borders; negative pads crop.</summary>
internal sealed class PadStep : Step
{
    private readonly int _top, _left;
    public PadStep(Value x, Value y, int top, int left) { Inputs = [x]; Output = y; _top = top; _left = left; }
    public override string Name => "Pad";

    public override void Run(Frame f)
    {
        var x = Inputs[0];
        var xs = f.Of(x); var ys = f.Of(Output);
        int h = x.H, w = x.W, ho = Output.H, wo = Output.W;
        for (int ch = 0; ch < Output.C; ch++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    int iy = oy - _top, ix = ox - _left;
                    ys[(ch * ho + oy) * wo + ox] = (uint)iy < (uint)h && (uint)ix < (uint)w ? xs[(ch * h + iy) * w + ix] : 0;
                }
    }
}

internal sealed class ConcatStep : Step
{
    public ConcatStep(Value[] xs, Value y) { Inputs = xs; Output = y; }
    public override string Name => "Concat";

    public override void Run(Frame f)
    {
        var ys = f.Of(Output);
        int at = 0;
        foreach (var x in Inputs)
        {
            f.Of(x).AsSpan(0, x.Size).CopyTo(ys.AsSpan(at));
            at += x.Size;
        }
    }
}
