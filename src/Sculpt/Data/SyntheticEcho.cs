using Sculpt.Clinical;

namespace Sculpt.Data;

public sealed record SynthOptions
{
    public int Size { get; init; } = 112;
    public int Count { get; init; } = 800;
    public int Videos { get; init; }
    public int VideoFrames { get; init; } = 40;
    /// <summary>Also label myocardium (2) and left atrium (3), as CAMUS does.</summary>
    public bool ExtraClasses { get; init; }
    public int Seed { get; init; }
    public double ValFraction { get; init; } = 0.15;
    public double TestFraction { get; init; } = 0.15;
}

public sealed record SynthVideo(string Id, List<float[]> Frames, List<byte[]> Masks, double Fps, double EjectionFraction,
    List<int> EndDiastole, List<int> EndSystole, List<double> Volumes);

/// <summary>
/// Apical four-chamber-like echocardiography frames. The heart is drawn in its own coordinates (origin near
/// the crux, y towards the atria), posed per case, then imaged like an ultrasound scan: a sector from the
/// transducer at the top, speckle, depth attenuation, gain, near-field haze, acoustic shadows and wall
/// dropout. All four chambers are dark, so the LV has to be found by its place among them, and the mitral
/// plane — not a wall — separates it from the equally dark left atrium.
/// </summary>
public static class SyntheticEcho
{
    public static readonly string[] BinaryLabels = { "background", "lv" };
    public static readonly string[] ExtraLabels = { "background", "lv", "myocardium", "la" };

    private readonly record struct Ellipse(double Cx, double Cy, double A, double B, double Tilt)
    {
        /// <summary>Coordinates in the ellipse frame, scaled so the boundary is at radius 1.</summary>
        public (double U, double V) Local(double x, double y)
        {
            double dx = x - Cx, dy = y - Cy, c = Math.Cos(Tilt), s = Math.Sin(Tilt);
            return ((dx * c + dy * s) / A, (-dx * s + dy * c) / B);
        }
        public bool Inside(double x, double y) { var (u, v) = Local(x, y); return u * u + v * v <= 1; }
        public Ellipse Grow(double d) => this with { A = A + d, B = B + d };
    }

    /// <summary>Anatomy and imaging conditions of one case; the cardiac phase is applied per frame.</summary>
    private sealed class Case
    {
        public double Rot, Scale, Tx, Ty, HalfAngle, Apex = 0.02, MaxDepth;
        public double LvA, LvB, LvTilt, LvX, BaseY, BaseFrac, LvWall, RvA, RvB, RvX, LaA, LaB, RaA, RaB;
        public double Blood, Tissue, Myo, Peri, Haze, Atten, Gain, Gamma, Noise, SpeckleSigma;
        public double ShadowAngle, ShadowWidth, ShadowDepth, ShadowFactor;
        public double DropAngle, DropWidth, DropFactor, MitralOpen;
        public double Ka, Kb;

        public static Case Sample(Random r)
        {
            double U(double lo, double hi) => lo + (hi - lo) * r.NextDouble();
            var c = new Case
            {
                Rot = U(-0.22, 0.22), Scale = U(0.82, 1.12), Tx = U(-0.05, 0.05), Ty = U(-0.03, 0.04),
                HalfAngle = U(36, 43) * Math.PI / 180, MaxDepth = U(0.9, 0.98),
                LvA = U(0.085, 0.12), LvB = U(0.2, 0.27), LvTilt = U(-0.15, 0.15), LvX = U(0.1, 0.14),
                BaseY = U(0.13, 0.19), BaseFrac = U(0.55, 0.8), LvWall = U(0.03, 0.05),
                RvA = U(0.06, 0.095), RvB = U(0.14, 0.2), RvX = U(-0.14, -0.09),
                LaA = U(0.08, 0.11), LaB = U(0.08, 0.12), RaA = U(0.07, 0.1), RaB = U(0.07, 0.11),
                Blood = U(0.02, 0.12), Tissue = U(0.22, 0.45), Myo = U(0.5, 0.85), Peri = U(0.75, 1.0),
                Haze = r.NextDouble() < 0.5 ? U(0.05, 0.25) : 0, Atten = U(0.2, 1.3), Gain = U(0.75, 1.35),
                Gamma = U(0.7, 1.4), Noise = U(0.01, 0.05), SpeckleSigma = U(0.7, 1.3),
                ShadowWidth = r.NextDouble() < 0.4 ? U(0.04, 0.12) : 0, ShadowAngle = U(-0.5, 0.5), ShadowDepth = U(0.3, 0.7), ShadowFactor = U(0.15, 0.5),
                DropWidth = r.NextDouble() < 0.6 ? U(0.1, 0.3) : 0, DropAngle = U(-0.1, 0.6), DropFactor = U(0.1, 0.45),
                MitralOpen = U(0, 1),
            };
            c.SetTargetEf(U(25, 70));
            return c;
        }

        /// <summary>Sets LV shrink so that area–length EF (∝ a²·b) is close to <paramref name="ef"/> percent.</summary>
        public void SetTargetEf(double ef)
        {
            double target = 1 - ef / 100, lo = 0, hi = 0.9;
            for (int i = 0; i < 60; i++)
            {
                double k = (lo + hi) / 2, ratio = Math.Pow(1 - k, 2) * (1 - 0.4 * k);
                if (ratio > target) lo = k; else hi = k;
            }
            Ka = (lo + hi) / 2; Kb = 0.4 * Ka;
        }
    }

    /// <summary>Contraction f ∈ [0,1]: 0 at end-diastole (φ = 0), 1 at end-systole (φ = 0.35).</summary>
    private static double Contraction(double phase)
    {
        phase -= Math.Floor(phase);
        return phase < 0.35 ? 0.5 * (1 - Math.Cos(Math.PI * phase / 0.35)) : 0.5 * (1 + Math.Cos(Math.PI * (phase - 0.35) / 0.65));
    }

    /// <summary>
    /// Per-case random stream. Seeds are mixed with SplitMix64 — not HashCode.Combine, which .NET randomises
    /// per process — so the same --seed draws the same data in every run.
    /// </summary>
    public static Random CaseRandom(int seed, int index, int stream)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)index * 0xBF58476D1CE4E5B9UL + (ulong)(uint)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return new Random((int)(z & 0x7FFFFFFF));
    }

    /// <summary>One still frame: image in [0,1] (H×W) and label map.</summary>
    public static (float[] Image, byte[] Mask) Frame(SynthOptions o, int index)
    {
        var r = CaseRandom(o.Seed, index, 1);
        var c = Case.Sample(r);
        // Same contraction model and phase law as the videos: a model trained on still frames must have seen
        // end-systolic cavities as small as the loops it will measure (an older generator stopped short of
        // end-systole, and segmented loops then under-read EF by 4–13 points).
        return Render(o, c, Contraction(r.NextDouble()), r);
    }

    public static SynthVideo Video(SynthOptions o, int index)
    {
        var r = CaseRandom(o.Seed, index, 2);
        var c = Case.Sample(r);
        double period = 18 + 8 * r.NextDouble(), offset = r.NextDouble();
        var frames = new List<float[]>(); var masks = new List<byte[]>(); var vols = new List<double>(); var phases = new List<double>();
        for (int t = 0; t < o.VideoFrames; t++)
        {
            double phase = offset + t / period;
            var frameRandom = CaseRandom(o.Seed, index * 1000 + t, 3);
            var (img, mask) = Render(o, c, Contraction(phase), frameRandom);
            frames.Add(img); masks.Add(mask);
            vols.Add(AreaLength.Volume(mask, o.Size, o.Size));
            phases.Add(phase);
        }
        // ED/ES of each complete beat from the true masks: largest and smallest area-length volume
        var ed = new List<int>(); var es = new List<int>(); var efs = new List<double>();
        int firstBeat = (int)Math.Ceiling(offset), lastBeat = (int)Math.Floor(offset + (o.VideoFrames - 1) / period);
        for (int beat = firstBeat; beat < lastBeat; beat++)
        {
            var idx = Enumerable.Range(0, o.VideoFrames).Where(t => phases[t] >= beat - 0.15 && phases[t] < beat + 0.85).ToList();
            if (idx.Count < 3) continue;
            int edF = idx.MaxBy(t => vols[t]), esF = idx.MinBy(t => vols[t]);
            ed.Add(edF); es.Add(esF); efs.Add(AreaLength.EjectionFraction(vols[edF], vols[esF]));
        }
        if (efs.Count == 0)
        {
            int edF = Enumerable.Range(0, o.VideoFrames).MaxBy(t => vols[t]), esF = Enumerable.Range(0, o.VideoFrames).MinBy(t => vols[t]);
            ed.Add(edF); es.Add(esF); efs.Add(AreaLength.EjectionFraction(vols[edF], vols[esF]));
        }
        return new SynthVideo($"video_{index:D4}", frames, masks, 50.0, efs.Average(), ed, es, vols);
    }

    private static (float[] Image, byte[] Mask) Render(SynthOptions o, Case c, double f, Random r)
    {
        int n = o.Size;
        // cardiac phase: LV shrinks towards its fixed mitral base, the wall thickens; atria fill in systole
        double lvA = c.LvA * (1 - c.Ka * f), lvB = c.LvB * (1 - c.Kb * f);
        double lvCy = c.BaseY - lvB * c.BaseFrac;
        var lv = new Ellipse(c.LvX, lvCy, lvA, lvB, c.LvTilt);
        var lvOuter = lv.Grow(c.LvWall * (1 + 0.5 * f));
        double rvB = c.RvB * (1 - 0.1 * f);
        var rv = new Ellipse(c.RvX, c.BaseY + 0.01 - rvB * 0.75, c.RvA * (1 - 0.15 * f), rvB, -0.1);
        var rvOuter = rv.Grow(0.02);
        var la = new Ellipse(c.LvX + 0.01, c.BaseY + c.LaB * 0.95 + 0.01, c.LaA * (1 + 0.15 * f), c.LaB * (1 + 0.15 * f), 0.05);
        var ra = new Ellipse(c.RvX - 0.01, c.BaseY + c.RaB * 0.95 + 0.01, c.RaA * (1 + 0.12 * f), c.RaB * (1 + 0.12 * f), -0.05);
        var peri = new Ellipse(0.01, 0.02, 0.3, 0.45, 0);

        var tissue = new float[n * n];
        var label = new byte[n * n];
        var sector = new bool[n * n];
        var depth = new float[n * n];
        var angle = new float[n * n];
        double cr = Math.Cos(c.Rot), sr = Math.Sin(c.Rot);
        for (int py = 0; py < n; py++)
            for (int px = 0; px < n; px++)
            {
                int i = py * n + px;
                double u = (px + 0.5) / n, v = (py + 0.5) / n;
                double ang = Math.Atan2(u - 0.5, v - c.Apex), rad = Math.Sqrt((u - 0.5) * (u - 0.5) + (v - c.Apex) * (v - c.Apex));
                sector[i] = Math.Abs(ang) <= c.HalfAngle && rad <= c.MaxDepth;
                depth[i] = (float)rad; angle[i] = (float)ang;
                // image → heart coordinates: heart centre at (0.5 + tx, 0.5 + ty)
                double dx = (u - 0.5 - c.Tx) / c.Scale, dy = (v - 0.5 - c.Ty) / c.Scale;
                double hx = dx * cr + dy * sr, hy = -dx * sr + dy * cr;
                double val = c.Tissue;
                var (pu, pv) = peri.Local(hx, hy);
                double pr = Math.Sqrt(pu * pu + pv * pv);
                if (pr > 0.93 && pr < 1.05) val = c.Peri;
                bool aboveBase = hy <= c.BaseY;
                bool inLv = lv.Inside(hx, hy) && aboveBase;
                bool inLvWall = !inLv && lvOuter.Inside(hx, hy) && hy <= c.BaseY + 0.02;
                bool inRv = rv.Inside(hx, hy) && aboveBase;
                bool inRvWall = !inRv && rvOuter.Inside(hx, hy) && hy <= c.BaseY + 0.02;
                bool inLa = la.Inside(hx, hy) && hy > c.BaseY + 0.005;
                bool inRa = ra.Inside(hx, hy) && hy > c.BaseY + 0.005;
                bool inLaWall = !inLa && la.Grow(0.015).Inside(hx, hy) && hy > c.BaseY;
                bool inRaWall = !inRa && ra.Grow(0.015).Inside(hx, hy) && hy > c.BaseY;
                if (inLaWall || inRaWall) val = 0.5 * (c.Myo + c.Tissue);
                if (inLvWall || inRvWall) val = c.Myo;
                if (inLv || inRv || inLa || inRa) val = c.Blood;
                // mitral leaflets: thin bright strands hanging from the annulus into the LV, more open in diastole
                double open = Math.Clamp(c.MitralOpen * (1 - f) + 0.1, 0, 1);
                foreach (double ax in new[] { c.LvX - lvA * 0.85, c.LvX + lvA * 0.85 })
                {
                    double dirx = ax < c.LvX ? 1 : -1;
                    double lx = hx - ax, ly = hy - c.BaseY;
                    double leafLen = lvA * 0.8, theta = open * 1.2;
                    double tx = dirx * Math.Cos(theta), ty = -Math.Sin(theta);
                    double along = lx * tx + ly * ty, across = Math.Abs(-lx * ty + ly * tx);
                    if (along > 0 && along < leafLen && across < 0.006) val = c.Myo * 0.8;
                }
                tissue[i] = (float)val;
                if (!sector[i]) continue;
                if (inLv) label[i] = 1;
                else if (o.ExtraClasses && inLvWall) label[i] = 2;
                else if (o.ExtraClasses && inLa) label[i] = 3;
            }

        // wall dropout: a band of beam angles where walls return little echo (walls parallel to the beam)
        if (c.DropWidth > 0)
        {
            double a0 = c.DropAngle + c.Rot * 0.5;
            for (int i = 0; i < n * n; i++)
                if (Math.Abs(angle[i] - a0) < c.DropWidth / 2 && tissue[i] > c.Tissue)
                    tissue[i] = (float)(c.Blood + (tissue[i] - c.Blood) * c.DropFactor);
        }
        var blurred = GaussianBlur(tissue, n, n, 0.8);
        var speckle = Speckle(n, c.SpeckleSigma, r);
        var img = new float[n * n];
        for (int i = 0; i < n * n; i++)
        {
            if (!sector[i]) continue;
            double d = depth[i];
            double v = blurred[i] * speckle[i] * Math.Exp(-c.Atten * d) * (1 + 0.6 * c.Atten * d); // TGC partly compensates
            v += c.Haze * Math.Exp(-d / 0.25) * speckle[i];
            if (c.ShadowWidth > 0 && Math.Abs(angle[i] - c.ShadowAngle) < c.ShadowWidth / 2 && d > c.ShadowDepth) v *= c.ShadowFactor;
            v = v * c.Gain + c.Noise * Gaussian(r);
            v = Math.Pow(Math.Clamp(v, 0, 1), c.Gamma);
            double edge = Math.Min((c.HalfAngle - Math.Abs(angle[i])) * n * d, (c.MaxDepth - d) * n); // soft sector edge
            img[i] = (float)(v * Math.Clamp(edge, 0, 1));
        }
        return (img, label);
    }

    private static double Gaussian(Random r)
    {
        double u1 = 1 - r.NextDouble(), u2 = r.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Fully developed speckle: magnitude of a spatially correlated complex Gaussian field, mean 1.</summary>
    private static float[] Speckle(int n, double sigma, Random r)
    {
        var re = new float[n * n]; var im = new float[n * n];
        for (int i = 0; i < n * n; i++) { re[i] = (float)Gaussian(r); im[i] = (float)Gaussian(r); }
        re = GaussianBlur(re, n, n, sigma); im = GaussianBlur(im, n, n, sigma);
        var mag = new float[n * n];
        double sum = 0;
        for (int i = 0; i < n * n; i++) { mag[i] = MathF.Sqrt(re[i] * re[i] + im[i] * im[i]); sum += mag[i]; }
        float inv = (float)(n * n / sum);
        for (int i = 0; i < n * n; i++) mag[i] *= inv;
        return mag;
    }

    internal static float[] GaussianBlur(float[] src, int h, int w, double sigma)
    {
        int rad = Math.Max(1, (int)Math.Ceiling(3 * sigma));
        var k = new float[2 * rad + 1];
        double s = 0;
        for (int i = -rad; i <= rad; i++) { k[i + rad] = (float)Math.Exp(-i * i / (2 * sigma * sigma)); s += k[i + rad]; }
        for (int i = 0; i < k.Length; i++) k[i] /= (float)s;
        var tmp = new float[h * w]; var dst = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float acc = 0;
                for (int j = -rad; j <= rad; j++) acc += k[j + rad] * src[y * w + Math.Clamp(x + j, 0, w - 1)];
                tmp[y * w + x] = acc;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float acc = 0;
                for (int j = -rad; j <= rad; j++) acc += k[j + rad] * tmp[Math.Clamp(y + j, 0, h - 1) * w + x];
                dst[y * w + x] = acc;
            }
        return dst;
    }
}
