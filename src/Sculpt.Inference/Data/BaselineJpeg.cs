namespace Sculpt.Data;

/// <summary>
/// A decoder for sequential JPEG with Huffman coding and 8-bit samples (ITU-T T.81 baseline and extended
/// sequential, SOF0/SOF1), the process DICOM's JPEG Baseline transfer syntax and Motion-JPEG use, computed
/// exactly as the Independent JPEG Group's library decodes it by default — the library dcmtk, PIL and FFmpeg
/// build on, so that a frame decodes to the same samples here as in the tools a clinic checks against:
/// the accurate integer IDCT (jidctint.c, 13-bit constants, two passes), "fancy" triangular upsampling of
/// subsampled chroma (jdsample.c, 2:1 horizontally and/or vertically) and fixed-point YCbCr → RGB (jdcolor.c).
/// Every read is bounds-checked: a damaged frame is refused with one line, never read past.
/// </summary>
public static class BaselineJpeg
{
    /// <summary>Whether <paramref name="jpeg"/>'s first frame header is one this decoder handles (SOF0 or SOF1).</summary>
    public static bool IsSequentialHuffman(byte[] jpeg)
    {
        int at = 2;
        while (at + 4 <= jpeg.Length && jpeg[at] == 0xFF)
        {
            byte m = jpeg[at + 1];
            if (m == 0xFF) { at++; continue; }
            if (m is >= 0xC0 and <= 0xCF && m is not (0xC4 or 0xC8 or 0xCC)) return m is 0xC0 or 0xC1;
            if (m is 0xDA or 0xD9) return false;
            at += 2 + (jpeg[at + 2] << 8 | jpeg[at + 3]);
        }
        return false;
    }

    private sealed class Component
    {
        public int Id, H, V, Tq, Dc, Ac, Pred;
        public int BlocksWide, BlocksHigh; // allocated, padded to whole MCUs
        public int Width, Height;          // downsampled size (IJG's downsampled_width/height)
        public byte[] Samples = [];        // BlocksWide·8 × BlocksHigh·8
        public int Stride => BlocksWide * 8;
    }

    private sealed class Huffman
    {
        // canonical code tables as T.81 Annex C/F describe them: per code length, the largest code and where its values start
        public readonly int[] MaxCode = new int[18], ValPtr = new int[17], MinCode = new int[17];
        public byte[] Values = [];
        public bool Defined;
    }

    public static Image8 Decode(byte[] jpeg, string source)
    {
        try { return new Decoder(jpeg, source).Run(); }
        catch (IndexOutOfRangeException) { throw new InvalidDataException($"{source}: JPEG data ends inside a segment (truncated or corrupt)"); }
    }

    private sealed class Decoder(byte[] d, string source)
    {
        private readonly int[][] _quant = new int[4][];
        private readonly Huffman[] _dc = [new(), new(), new(), new()], _ac = [new(), new(), new(), new()];
        private Component[] _components = [];
        private int _width, _height, _hMax, _vMax, _mcusWide, _mcusHigh, _restartInterval;
        private bool _adobe, _adobeTransform, _jfif, _frame;
        private int _scans;
        private int _pos;
        // bit reader over entropy-coded data
        private uint _bits; private int _bitCount; private bool _hitMarker;

        private InvalidDataException Bad(string what) => new($"{source}: {what}");

        public Image8 Run()
        {
            if (d.Length < 4 || d[0] != 0xFF || d[1] != 0xD8) throw Bad("not a JPEG frame (no start-of-image marker)");
            _pos = 2;
            bool scanned = false;
            while (true)
            {
                // data that ends after a scan without its end-of-image marker is decoded as far as it goes, as libjpeg does
                if (scanned && !MoreMarkers()) break;
                int marker = NextMarker();
                if (marker == 0xD9) break;
                if (marker is >= 0xD0 and <= 0xD7) continue; // stray restart marker between scans
                int length = U16(_pos);
                if (length < 2 || _pos + length > d.Length) throw Bad($"JPEG segment FF{marker:X2} of {length} bytes runs past the end of the data");
                int body = _pos + 2, end = _pos + length;
                switch (marker)
                {
                    case 0xDB: Quantisation(body, end); break;
                    case 0xC4: HuffmanTables(body, end); break;
                    case 0xC0 or 0xC1: Frame(body, end); break;
                    case 0xDD: if (length != 4) throw Bad("JPEG restart interval segment is not 4 bytes"); _restartInterval = U16(body); break;
                    case 0xEE: Adobe(body, end); break;
                    case 0xE0: _jfif |= end - body >= 5 && d.AsSpan(body, 5).SequenceEqual("JFIF\0"u8); break;
                    case 0xDA:
                        _pos = end;
                        Scan(body, end);
                        scanned = true;
                        continue;
                    case >= 0xC2 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC):
                        throw Bad($"JPEG process SOF{marker - 0xC0} ({(marker is 0xC2 or 0xC6 or 0xCA or 0xCE ? "progressive" : marker is 0xC3 or 0xC7 or 0xCB or 0xCF ? "lossless" : "arithmetic-coded")}) is not supported; baseline and extended sequential Huffman are");
                }
                _pos = end;
            }
            if (!scanned) throw Bad("JPEG frame holds no scan");
            return Output();
        }

        private int U16(int at) => at + 1 < d.Length ? d[at] << 8 | d[at + 1] : throw Bad("JPEG data ends inside a segment header");

        private bool MoreMarkers()
        {
            int at = _pos;
            while (at < d.Length && d[at] != 0xFF) at++;
            while (at < d.Length && d[at] == 0xFF) at++;
            return at < d.Length;
        }

        private int NextMarker()
        {
            // between segments only fill bytes (FF) may stand before a marker; anything else is skipped as libjpeg does
            while (_pos < d.Length && d[_pos] != 0xFF) _pos++;
            while (_pos < d.Length && d[_pos] == 0xFF) _pos++;
            if (_pos >= d.Length) throw Bad("JPEG data ends before its end-of-image marker");
            return d[_pos++];
        }

        private void Quantisation(int at, int end)
        {
            while (at < end)
            {
                int pq = d[at] >> 4, tq = d[at] & 15;
                if (pq > 1 || tq > 3) throw Bad($"JPEG quantisation table with precision {pq} and id {tq} is invalid");
                at++;
                var table = new int[64];
                for (int k = 0; k < 64; k++)
                {
                    if (at + (pq == 1 ? 1 : 0) >= end) throw Bad("JPEG quantisation table is truncated");
                    table[ZigZag[k]] = pq == 0 ? d[at++] : d[at++] << 8 | d[at++];
                }
                _quant[tq] = table;
            }
        }

        private void HuffmanTables(int at, int end)
        {
            while (at < end)
            {
                int tc = d[at] >> 4, th = d[at] & 15;
                if (tc > 1 || th > 3) throw Bad($"JPEG Huffman table of class {tc} and id {th} is invalid");
                if (at + 17 > end) throw Bad("JPEG Huffman table is truncated");
                var counts = d.AsSpan(at + 1, 16);
                int total = 0;
                foreach (var c in counts) total += c;
                if (total > 256 || at + 17 + total > end) throw Bad("JPEG Huffman table declares more values than it holds");
                Define(tc == 0 ? _dc[th] : _ac[th], counts, d.AsSpan(at + 17, total));
                at += 17 + total;
            }
        }

        public static void Define(Huffman h, ReadOnlySpan<byte> counts, ReadOnlySpan<byte> values)
        {
            // T.81 Annex C: codes of each length are consecutive, and each length's first code doubles the previous end
            int code = 0, k = 0;
            for (int len = 1; len <= 16; len++)
            {
                int n = counts[len - 1];
                h.ValPtr[len] = k;
                h.MinCode[len] = code;
                code += n; k += n;
                h.MaxCode[len] = n > 0 ? code - 1 : -1;
                code <<= 1;
            }
            h.MaxCode[17] = int.MaxValue;
            h.Values = values.ToArray();
            h.Defined = true;
        }

        private void Frame(int at, int end)
        {
            if (_frame) throw Bad("JPEG data holds a second frame header");
            _frame = true;
            if (end - at < 6) throw Bad("JPEG frame header is truncated");
            if (d[at] != 8) throw Bad($"JPEG sample precision {d[at]} bits is not supported (8 bits is)");
            _height = U16(at + 1); _width = U16(at + 3);
            int n = d[at + 5];
            if (_height == 0) throw Bad("JPEG frame with its height given after the first scan (DNL) is not supported");
            InputLimits.CheckPixels(_width, _height, source, "JPEG frame");
            if (n is not (1 or 3)) throw Bad($"JPEG frame with {n} components is not supported (1 or 3 are)");
            if (end - at < 6 + 3 * n) throw Bad("JPEG frame header is truncated");
            _components = new Component[n];
            for (int i = 0; i < n; i++)
            {
                int b = at + 6 + 3 * i;
                var c = new Component { Id = d[b], H = d[b + 1] >> 4, V = d[b + 1] & 15, Tq = d[b + 2] };
                if (c.H is < 1 or > 4 || c.V is < 1 or > 4 || c.Tq > 3) throw Bad($"JPEG component {c.Id} has invalid sampling {c.H}×{c.V} or table {c.Tq}");
                _components[i] = c;
            }
            _hMax = _components.Max(c => c.H); _vMax = _components.Max(c => c.V);
            _mcusWide = (_width + 8 * _hMax - 1) / (8 * _hMax);
            _mcusHigh = (_height + 8 * _vMax - 1) / (8 * _vMax);
            foreach (var c in _components)
            {
                if (_hMax % c.H != 0 || _vMax % c.V != 0) throw Bad("JPEG sampling factors that do not divide the largest are not supported");
                c.BlocksWide = _mcusWide * c.H; c.BlocksHigh = _mcusHigh * c.V;
                c.Width = (_width * c.H + _hMax - 1) / _hMax; c.Height = (_height * c.V + _vMax - 1) / _vMax;
                c.Samples = new byte[c.BlocksWide * 8 * c.BlocksHigh * 8];
            }
        }

        private void Adobe(int at, int end)
        {
            if (end - at >= 12 && d[at] == 'A' && d[at + 1] == 'd' && d[at + 2] == 'o' && d[at + 3] == 'b' && d[at + 4] == 'e')
            {
                _adobe = true;
                _adobeTransform = d[at + 11] != 0;
            }
        }

        private void Scan(int at, int end)
        {
            if (!_frame) throw Bad("JPEG scan before the frame header");
            // a sequential frame has at most one scan per component; more is a damaged (or hostile) file, each scan a whole decode
            if (++_scans > _components.Length) throw Bad($"JPEG frame has more scans than its {_components.Length} component(s)");
            int n = d[at];
            if (n < 1 || n > _components.Length || end - at < 1 + 2 * n + 3) throw Bad("JPEG scan header is invalid");
            var scan = new Component[n];
            for (int i = 0; i < n; i++)
            {
                int id = d[at + 1 + 2 * i], tables = d[at + 2 + 2 * i];
                var c = _components.FirstOrDefault(x => x.Id == id) ?? throw Bad($"JPEG scan names component {id}, which the frame does not have");
                c.Dc = tables >> 4; c.Ac = tables & 15;
                if (c.Dc > 3 || c.Ac > 3) throw Bad("JPEG scan names a Huffman table id above 3");
                if (!_dc[c.Dc].Defined || !_ac[c.Ac].Defined) throw Bad($"JPEG scan uses Huffman table {c.Dc}/{c.Ac}, which is not defined");
                if (_quant[c.Tq] is null) throw Bad($"JPEG component {c.Id} uses quantisation table {c.Tq}, which is not defined");
                scan[i] = c;
            }
            int ss = d[at + 1 + 2 * n], se = d[at + 2 + 2 * n], ahal = d[at + 3 + 2 * n];
            if (ss != 0 || se != 63 || ahal != 0) throw Bad("JPEG scan is not sequential (spectral selection or successive approximation)");
            if (n > 1 && scan.Sum(c => c.H * c.V) > 10) throw Bad("JPEG scan has more than 10 blocks per MCU");
            foreach (var c in scan) c.Pred = 0;
            _bits = 0; _bitCount = 0; _hitMarker = false;
            var block = new int[64];
            // one component alone is coded in its own raster of blocks, not padded to whole MCUs (T.81 A.2.2)
            int unitsWide = n == 1 ? (scan[0].Width + 7) / 8 : _mcusWide, unitsHigh = n == 1 ? (scan[0].Height + 7) / 8 : _mcusHigh;
            int units = unitsWide * unitsHigh, sinceRestart = 0;
            for (int u = 0; u < units; u++)
            {
                if (_restartInterval > 0 && sinceRestart == _restartInterval)
                {
                    Restart();
                    foreach (var c in scan) c.Pred = 0;
                    sinceRestart = 0;
                }
                int my = u / unitsWide, mx = u % unitsWide;
                if (n == 1) DecodeBlock(scan[0], block, mx, my);
                else
                    foreach (var c in scan)
                        for (int by = 0; by < c.V; by++)
                            for (int bx = 0; bx < c.H; bx++) DecodeBlock(c, block, mx * c.H + bx, my * c.V + by);
                sinceRestart++;
            }
            // the entropy-coded data ends at the next marker
            while (_pos < d.Length - 1 && !(d[_pos] == 0xFF && d[_pos + 1] != 0 && d[_pos + 1] is not (>= 0xD0 and <= 0xD7))) _pos++;
        }

        private void Restart()
        {
            // byte-align, then expect RSTn; a missing marker is tolerated as libjpeg does (the predictors still reset)
            _bits = 0; _bitCount = 0; _hitMarker = false;
            while (_pos < d.Length - 1 && !(d[_pos] == 0xFF && d[_pos + 1] is >= 0xD0 and <= 0xD7)) _pos++;
            if (_pos < d.Length - 1) _pos += 2;
        }

        private void Fill()
        {
            while (_bitCount <= 24)
            {
                int b = 0;
                if (!_hitMarker && _pos < d.Length)
                {
                    b = d[_pos];
                    if (b == 0xFF)
                    {
                        int next = _pos + 1 < d.Length ? d[_pos + 1] : 0xD9;
                        if (next == 0) _pos += 2;
                        else { _hitMarker = true; b = 0; } // a marker: zeros from here on, as libjpeg feeds
                    }
                    else _pos++;
                }
                _bits |= (uint)b << (24 - _bitCount);
                _bitCount += 8;
            }
        }

        private int Bit()
        {
            if (_bitCount == 0) Fill();
            int bit = (int)(_bits >> 31);
            _bits <<= 1; _bitCount--;
            return bit;
        }

        private int Receive(int count)
        {
            if (count == 0) return 0;
            if (_bitCount < count) Fill();
            int v = (int)(_bits >> (32 - count));
            _bits <<= count; _bitCount -= count;
            return v;
        }

        private int DecodeSymbol(Huffman h)
        {
            int code = Bit(), len = 1;
            while (code > h.MaxCode[len])
            {
                code = code << 1 | Bit();
                if (++len > 16) throw Bad("JPEG data holds an invalid Huffman code");
            }
            int index = h.ValPtr[len] + code - h.MinCode[len];
            return index < h.Values.Length ? h.Values[index] : throw Bad("JPEG data holds an invalid Huffman code");
        }

        /// <summary>T.81 F.2.2.1 EXTEND: the <paramref name="size"/>-bit amplitude as a signed value.</summary>
        private static int Extend(int v, int size) => size == 0 ? 0 : v < 1 << (size - 1) ? v - (1 << size) + 1 : v;

        private void DecodeBlock(Component c, int[] block, int bx, int by)
        {
            Array.Clear(block);
            int t = DecodeSymbol(_dc[c.Dc]);
            if (t > 11) throw Bad("JPEG DC difference of more than 11 bits");
            c.Pred += Extend(Receive(t), t);
            var q = _quant[c.Tq];
            block[0] = c.Pred * q[0];
            var ac = _ac[c.Ac];
            for (int k = 1; k < 64;)
            {
                int rs = DecodeSymbol(ac), r = rs >> 4, s = rs & 15;
                if (s == 0)
                {
                    if (r != 15) break; // end of block
                    k += 16;
                    continue;
                }
                k += r;
                if (k > 63) throw Bad("JPEG block has more than 64 coefficients");
                block[ZigZag[k]] = Extend(Receive(s), s) * q[ZigZag[k]];
                k++;
            }
            Idct(block, c.Samples, (by * 8) * c.Stride + bx * 8, c.Stride);
        }

        // jidctint.c's fixed-point constants: round(x · 2^13)
        private const int ConstBits = 13, Pass1Bits = 2;
        private const int F0298631336 = 2446, F0390180644 = 3196, F0541196100 = 4433, F0765366865 = 6270, F0899976223 = 7373,
            F1175875602 = 9633, F1501321110 = 12299, F1847759065 = 15137, F1961570560 = 16069, F2053119869 = 16819,
            F2562915447 = 20995, F3072711026 = 25172;

        private static int Descale(int x, int n) => (x + (1 << (n - 1))) >> n;

        /// <summary>The slow-but-accurate integer IDCT of IJG's jidctint.c (Loeffler–Ligtenberg–Moschytz), columns then rows.</summary>
        private static void Idct(int[] coefficients, byte[] output, int offset, int stride)
        {
            Span<int> ws = stackalloc int[64];
            for (int col = 0; col < 8; col++)
            {
                var (o0, o1, o2, o3, o4, o5, o6, o7) = Butterfly(coefficients[col], coefficients[8 + col], coefficients[16 + col], coefficients[24 + col],
                    coefficients[32 + col], coefficients[40 + col], coefficients[48 + col], coefficients[56 + col], ConstBits - Pass1Bits);
                ws[col] = o0; ws[8 + col] = o1; ws[16 + col] = o2; ws[24 + col] = o3;
                ws[32 + col] = o4; ws[40 + col] = o5; ws[48 + col] = o6; ws[56 + col] = o7;
            }
            for (int row = 0; row < 8; row++)
            {
                int r = row * 8;
                var (o0, o1, o2, o3, o4, o5, o6, o7) = Butterfly(ws[r], ws[r + 1], ws[r + 2], ws[r + 3], ws[r + 4], ws[r + 5], ws[r + 6], ws[r + 7],
                    ConstBits + Pass1Bits + 3);
                int at = offset + row * stride;
                output[at] = Limit(o0); output[at + 1] = Limit(o1); output[at + 2] = Limit(o2); output[at + 3] = Limit(o3);
                output[at + 4] = Limit(o4); output[at + 5] = Limit(o5); output[at + 6] = Limit(o6); output[at + 7] = Limit(o7);
            }
        }

        /// <summary>
        /// IJG's post-IDCT range limit: the value taken modulo 1024 into [−512, 512), offset by 128 and clamped
        /// to [0, 255] (jdmaster.c's sample_range_limit table indexed with RANGE_MASK).
        /// </summary>
        private static byte Limit(int x)
        {
            int v = x & 1023;
            if (v >= 512) v -= 1024;
            return (byte)Math.Clamp(v + 128, 0, 255);
        }

        private static (int, int, int, int, int, int, int, int) Butterfly(int i0, int i1, int i2, int i3, int i4, int i5, int i6, int i7, int shift)
        {
            // even part
            int z2 = i2, z3 = i6;
            int z1 = (z2 + z3) * F0541196100;
            int tmp2 = z1 + z3 * -F1847759065, tmp3 = z1 + z2 * F0765366865;
            int tmp0 = (i0 + i4) << ConstBits, tmp1 = (i0 - i4) << ConstBits;
            int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
            // odd part
            tmp0 = i7; tmp1 = i5; tmp2 = i3; tmp3 = i1;
            z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2; int z4 = tmp1 + tmp3;
            int z5 = (z3 + z4) * F1175875602;
            tmp0 *= F0298631336; tmp1 *= F2053119869; tmp2 *= F3072711026; tmp3 *= F1501321110;
            z1 *= -F0899976223; z2 *= -F2562915447; z3 *= -F1961570560; z4 *= -F0390180644;
            z3 += z5; z4 += z5;
            tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
            return (Descale(tmp10 + tmp3, shift), Descale(tmp11 + tmp2, shift), Descale(tmp12 + tmp1, shift), Descale(tmp13 + tmp0, shift),
                Descale(tmp13 - tmp0, shift), Descale(tmp12 - tmp1, shift), Descale(tmp11 - tmp2, shift), Descale(tmp10 - tmp3, shift));
        }

        private Image8 Output()
        {
            int w = _width, h = _height;
            if (_components.Length == 1)
            {
                var c = _components[0];
                var grey = new byte[w * h];
                for (int y = 0; y < h; y++) Array.Copy(c.Samples, y * c.Stride, grey, y * w, w);
                return new Image8(w, h, 1, grey);
            }
            var planes = _components.Select(Upsample).ToArray();
            // IJG's colour-space rule (jdapimin.c): JFIF means YCbCr; else an Adobe marker's transform flag says; else
            // components named R, G, B are RGB; else YCbCr
            bool ycc = _jfif || (_adobe ? _adobeTransform : !(_components[0].Id == 'R' && _components[1].Id == 'G' && _components[2].Id == 'B'));
            var rgb = new byte[w * h * 3];
            for (int i = 0; i < w * h; i++)
            {
                int y = planes[0][i], cb = planes[1][i], cr = planes[2][i];
                if (!ycc) { rgb[3 * i] = (byte)y; rgb[3 * i + 1] = (byte)cb; rgb[3 * i + 2] = (byte)cr; continue; }
                rgb[3 * i] = Clamp(y + CrR[cr]);
                rgb[3 * i + 1] = Clamp(y + ((CbG[cb] + CrG[cr]) >> ScaleBits));
                rgb[3 * i + 2] = Clamp(y + CbB[cb]);
            }
            return new Image8(w, h, 3, rgb);
        }

        private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

        /// <summary>A component at full image size, w × h: fancy (triangular) 2:1 upsampling as jdsample.c, box otherwise.</summary>
        private byte[] Upsample(Component c)
        {
            int w = _width, h = _height, fx = _hMax / c.H, fy = _vMax / c.V;
            var full = new byte[w * h];
            if (fx == 1 && fy == 1)
            {
                for (int y = 0; y < h; y++) Array.Copy(c.Samples, y * c.Stride, full, y * w, w);
                return full;
            }
            int outWide = c.Width * fx;
            var row = new byte[Math.Max(outWide, w) + 2];
            if (fx == 2 && fy == 1 && c.Width > 2)
            {
                for (int y = 0; y < h; y++)
                {
                    FancyH2(c.Samples.AsSpan(y * c.Stride, c.Width), row);
                    Array.Copy(row, 0, full, y * w, w);
                }
                return full;
            }
            if (fx == 2 && fy == 2 && c.Width > 2)
            {
                for (int y = 0; y < h; y++)
                {
                    // output row 2r uses the input row above r, row 2r+1 the one below; at the edges the edge row itself
                    int r = y / 2, other = y % 2 == 0 ? Math.Max(0, r - 1) : Math.Min(c.Height - 1, r + 1);
                    FancyH2V2(c.Samples.AsSpan(r * c.Stride, c.Width), c.Samples.AsSpan(other * c.Stride, c.Width), row);
                    Array.Copy(row, 0, full, y * w, w);
                }
                return full;
            }
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) full[y * w + x] = c.Samples[(y / fy) * c.Stride + x / fx];
            return full;
        }

        private static void FancyH2(ReadOnlySpan<byte> input, byte[] output)
        {
            int n = input.Length, o = 0;
            output[o++] = input[0];
            output[o++] = (byte)((input[0] * 3 + input[1] + 2) >> 2);
            for (int i = 1; i < n - 1; i++)
            {
                int v = input[i] * 3;
                output[o++] = (byte)((v + input[i - 1] + 1) >> 2);
                output[o++] = (byte)((v + input[i + 1] + 2) >> 2);
            }
            output[o++] = (byte)((input[n - 1] * 3 + input[n - 2] + 1) >> 2);
            output[o] = input[n - 1];
        }

        private static void FancyH2V2(ReadOnlySpan<byte> near, ReadOnlySpan<byte> far, byte[] output)
        {
            int n = near.Length, o = 0;
            int thisSum = near[0] * 3 + far[0], nextSum = near[1] * 3 + far[1], lastSum;
            output[o++] = (byte)((thisSum * 4 + 8) >> 4);
            output[o++] = (byte)((thisSum * 3 + nextSum + 7) >> 4);
            lastSum = thisSum; thisSum = nextSum;
            for (int i = 1; i < n - 1; i++)
            {
                nextSum = near[i + 1] * 3 + far[i + 1];
                output[o++] = (byte)((thisSum * 3 + lastSum + 8) >> 4);
                output[o++] = (byte)((thisSum * 3 + nextSum + 7) >> 4);
                lastSum = thisSum; thisSum = nextSum;
            }
            output[o++] = (byte)((thisSum * 3 + lastSum + 8) >> 4);
            output[o] = (byte)((thisSum * 4 + 7) >> 4);
        }
    }

    // jdcolor.c: YCbCr → RGB in 16-bit fixed point, R = Y + 1.402·Cr', G = Y − 0.34414·Cb' − 0.71414·Cr', B = Y + 1.772·Cb'
    private const int ScaleBits = 16;
    private static readonly int[] CrR = Table(c => (91881 * c + (1 << 15)) >> ScaleBits);
    private static readonly int[] CbB = Table(c => (116130 * c + (1 << 15)) >> ScaleBits);
    private static readonly int[] CrG = Table(c => -46802 * c);
    private static readonly int[] CbG = Table(c => -22554 * c + (1 << 15));

    private static int[] Table(Func<int, int> f) => Enumerable.Range(0, 256).Select(i => f(i - 128)).ToArray();

    /// <summary>T.81 Figure A.6: the zig-zag order's position k → natural (row-major) index.</summary>
    private static readonly int[] ZigZag =
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];
}
