package gguf

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model/tokenizer"
)

// tinyLlama returns metadata and tensors (HF values permuted to GGUF order)
// of a 2-block llama; tied drops output.weight. hf holds the HF-layout
// values by HF name.
func tinyLlama(rng *rand.Rand, tied bool, typ TensorType) (meta []KV, ts []WriteTensor, hf map[string][]float32) {
	const hidden, inter, heads, kv, vocab, blocks = 64, 96, 4, 2, 40, 2
	hd := hidden / heads
	toks := make([]string, vocab)
	for i := range toks {
		toks[i] = string(rune('a' + i%26))
		if i >= 26 {
			toks[i] += "x"
		}
	}
	meta = []KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "llama.block_count", Value: uint32(blocks)},
		{Key: "llama.context_length", Value: uint32(256)},
		{Key: "llama.embedding_length", Value: uint32(hidden)},
		{Key: "llama.feed_forward_length", Value: uint32(inter)},
		{Key: "llama.attention.head_count", Value: uint32(heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(kv)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-6)},
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.tokens", Value: toks},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(3)},
	}
	hf = map[string][]float32{}
	add := func(gname, hname string, shape []int, t TensorType, heads int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		hf[hname] = v
		src := v
		if heads > 0 {
			src = Permute(v, shape[0], heads)
		}
		dims := make([]uint64, len(shape))
		for i, d := range shape {
			dims[len(shape)-1-i] = uint64(d)
		}
		ts = append(ts, WriteTensor{Name: gname, Dims: dims, Type: t, Data: src})
	}
	add("token_embd.weight", "model.embed_tokens.weight", []int{vocab, hidden}, typ, 0)
	add("output_norm.weight", "model.norm.weight", []int{hidden}, F32, 0)
	if !tied {
		add("output.weight", "lm_head.weight", []int{vocab, hidden}, typ, 0)
	}
	for b := range blocks {
		p, q := "blk."+string(rune('0'+b))+".", "model.layers."+string(rune('0'+b))+"."
		add(p+"attn_norm.weight", q+"input_layernorm.weight", []int{hidden}, F32, 0)
		add(p+"ffn_norm.weight", q+"post_attention_layernorm.weight", []int{hidden}, F32, 0)
		add(p+"attn_q.weight", q+"self_attn.q_proj.weight", []int{heads * hd, hidden}, typ, heads)
		add(p+"attn_k.weight", q+"self_attn.k_proj.weight", []int{kv * hd, hidden}, typ, kv)
		add(p+"attn_v.weight", q+"self_attn.v_proj.weight", []int{kv * hd, hidden}, typ, 0)
		add(p+"attn_output.weight", q+"self_attn.o_proj.weight", []int{hidden, heads * hd}, typ, 0)
		add(p+"ffn_gate.weight", q+"mlp.gate_proj.weight", []int{inter, hidden}, typ, 0)
		add(p+"ffn_up.weight", q+"mlp.up_proj.weight", []int{inter, hidden}, typ, 0)
		add(p+"ffn_down.weight", q+"mlp.down_proj.weight", []int{hidden, inter}, typ, 0)
	}
	return meta, ts, hf
}

func encode(t testing.TB, meta []KV, ts []WriteTensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestModelRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		tied bool
	}{{"untied", false}, {"tied", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			meta, ts, hf := tinyLlama(rng, tc.tied, F32)
			m, err := OpenModel(writeFile(t, encode(t, meta, ts)))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var want []string
			for n := range hf {
				want = append(want, n)
			}
			sort.Strings(want)
			if diff := cmp.Diff(want, m.Names()); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			for _, n := range want {
				got, err := m.Load(n)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(hf[n], got.Data); diff != "" {
					t.Errorf("%s: values differ (-want +got):\n%s", n, diff)
				}
				if got.Numel() != len(got.Data) {
					t.Errorf("%s: shape %v for %d values", n, got.Shape, len(got.Data))
				}
			}
			q, _ := m.Load("model.layers.1.self_attn.q_proj.weight")
			if diff := cmp.Diff([]int{64, 64}, q.Shape); diff != "" {
				t.Errorf("q shape: %s", diff)
			}
			d, _ := m.Load("model.layers.1.mlp.down_proj.weight")
			if diff := cmp.Diff([]int{64, 96}, d.Shape); diff != "" {
				t.Errorf("down shape: %s", diff)
			}
			c := m.Config()
			if c.TieWordEmbeddings != tc.tied || c.HeadDim != 16 || c.NumKeyValueHeads != 2 || c.RopeTheta != 10000 ||
				c.RMSNormEps != 1e-6 || c.VocabSize != 40 || c.BOSTokenID != 3 || c.EOSTokenID != -1 || c.MaxPositionEmbeddings != 256 {
				t.Errorf("config %+v", *c)
			}
			raw, err := json.Marshal(c.Raw)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			json.Unmarshal(raw, &back)
			for _, k := range []string{"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
				"num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps", "rope_theta",
				"tie_word_embeddings", "hidden_act", "max_position_embeddings"} {
				if _, ok := back[k]; !ok {
					t.Errorf("config.json lacks %s", k)
				}
			}
			if back["tie_word_embeddings"] != tc.tied || back["eos_token_id"] != nil {
				t.Errorf("config.json %s", raw)
			}
		})
	}
}

func TestPermute(t *testing.T) {
	// One head of 4 rows: HF rows a b | c d are interleaved to a c b d.
	if diff := cmp.Diff([]float32{0, 2, 1, 3}, Permute([]float32{0, 1, 2, 3}, 4, 1)); diff != "" {
		t.Error(diff)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ rows, in, heads int }{{8, 3, 2}, {64, 5, 4}, {192, 2, 3}} {
		w := make([]float32, tc.rows*tc.in)
		for i := range w {
			w[i] = rng.Float32()
		}
		if diff := cmp.Diff(w, Unpermute(Permute(w, tc.rows, tc.heads), tc.rows, tc.heads)); diff != "" {
			t.Errorf("%+v: Unpermute∘Permute is not the identity: %s", tc, diff)
		}
	}
}

type fixtureTensor struct {
	GGUF, HF, Type          string
	Shape                   []int
	Source, Quant, Expected string
}

func b64floats(t *testing.T, s string) []float32 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// TestPythonFixture checks the reader, dequantizer, quantizer and the q/k
// un-permutation against gguf-py (tools/oracle/gguf_fixture.py).
func TestPythonFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/tiny_llama.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct{ Tensors []fixtureTensor }
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel("testdata/tiny_llama.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	types := map[string]TensorType{"F32": F32, "F16": F16, "BF16": BF16, "Q8_0": Q8_0, "Q4_0": Q4_0, "Q4_1": Q4_1}
	seen := map[string]bool{}
	for _, ft := range fx.Tensors {
		t.Run(ft.HF, func(t *testing.T) {
			typ, ok := types[ft.Type]
			if !ok {
				t.Fatalf("type %s", ft.Type)
			}
			seen[ft.Type] = true
			ti, ok := m.File().Tensor(ft.GGUF)
			if !ok || ti.Type != typ {
				t.Fatalf("tensor %s: %+v", ft.GGUF, ti)
			}
			got, err := m.Load(ft.HF)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ft.Shape, got.Shape); diff != "" {
				t.Errorf("shape: %s", diff)
			}
			want := b64floats(t, ft.Expected)
			if diff := cmp.Diff(want, got.Data); diff != "" {
				t.Errorf("dequantized HF tensor differs from gguf-py (-want +got):\n%s", diff)
			}
			q, err := Quantize(b64floats(t, ft.Source), typ)
			if err != nil {
				t.Fatal(err)
			}
			wantQ, _ := base64.StdEncoding.DecodeString(ft.Quant)
			if !bytes.Equal(q, wantQ) {
				t.Errorf("Quantize differs from gguf-py's quantize")
			}
		})
	}
	if len(seen) != len(types) {
		t.Errorf("fixture covers %v", seen)
	}
	c := m.Config()
	if c.HiddenSize != 32 || c.NumAttentionHeads != 4 || c.NumKeyValueHeads != 2 || c.RopeTheta != 100000 ||
		c.RMSNormEps != 1e-5 || c.VocabSize != 32 || c.TieWordEmbeddings || c.BOSTokenID != 1 || c.EOSTokenID != 2 {
		t.Errorf("config %+v", *c)
	}
}

func TestTokenizer(t *testing.T) {
	m, err := OpenModel("testdata/tiny_llama.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	bpe, ok := tok.(*tokenizer.BPE)
	if !ok {
		t.Fatalf("tokenizer is %T", tok)
	}
	toks := make([]string, 32)
	types := make([]int32, 32)
	for i := range toks {
		toks[i] = fmt.Sprintf("x%d", i)
		types[i] = 1
	}
	copy(toks, []string{"a", "b", "c", "ab", "abc"})
	types[30], types[31] = 3, 3
	want := tokenizer.BPEConfig{Tokens: toks, Merges: []string{"a b", "ab c"}, TokenTypes: types, Pre: "smollm", BOS: 1, EOS: 2}
	if diff := cmp.Diff(want, bpe.Config()); diff != "" {
		t.Errorf("BPE config (-want +got):\n%s", diff)
	}
	if got := tok.Encode("abcab"); !cmp.Equal(got, []int32{4, 3}) {
		t.Errorf("Encode(abcab) = %v, want [4 3]", got)
	}

	rng := rand.New(rand.NewPCG(17, 18))
	meta, ts, _ := tinyLlama(rng, true, F32)
	meta[8].Value = "bert" // tokenizer.ggml.model: WordPiece
	m2, err := OpenModel(writeFile(t, encode(t, meta, ts)))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := m2.Tokenizer(); err == nil || !strings.Contains(err.Error(), `tokenizer model "bert" is not supported`) {
		t.Errorf("WordPiece tokenizer: %v", err)
	}
}

// f16ref decodes a half from its definition, in float64.
func f16ref(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	if e == 0 {
		return s * m * math.Pow(2, -24)
	}
	return s * (1 + m/1024) * math.Pow(2, float64(e-15))
}

func TestFloat16(t *testing.T) {
	for h := range 1 << 16 {
		h := uint16(h)
		f := Float16ToFloat32(h)
		if h&0x7c00 == 0x7c00 {
			if (h&0x3ff != 0) != math.IsNaN(float64(f)) {
				t.Fatalf("%#x: %v", h, f)
			}
			continue
		}
		if float64(f) != f16ref(h) {
			t.Fatalf("%#x: %v, want %v", h, f, f16ref(h))
		}
		if back := Float32ToFloat16(f); back != h {
			t.Fatalf("%#x round trips to %#x", h, back)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		f := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-25)))
		h := Float32ToFloat16(f)
		if h&0x7c00 == 0x7c00 {
			if math.Abs(float64(f)) < 65520 {
				t.Fatalf("%v overflowed", f)
			}
			continue
		}
		err := math.Abs(f16ref(h) - float64(f))
		for _, n := range []uint16{h + 1, h - 1} {
			if n&0x7c00 != 0x7c00 && math.Abs(f16ref(n)-float64(f)) < err {
				t.Fatalf("%v -> %#x (%v) but %#x is nearer", f, h, f16ref(h), n)
			}
		}
	}
}

// refDequant decodes one block format from its definition in float64.
func refDequant(t TensorType, b []byte, n int) []float64 {
	out := make([]float64, n)
	le := binary.LittleEndian
	for blk := 0; blk < n/32; blk++ {
		switch t {
		case Q8_0:
			p := b[blk*34:]
			d := f16ref(le.Uint16(p))
			for j := range 32 {
				out[blk*32+j] = float64(int8(p[2+j])) * d
			}
		case Q4_0, Q4_1:
			sz, off := 18, 2
			if t == Q4_1 {
				sz, off = 20, 4
			}
			p := b[blk*sz:]
			d, m := f16ref(le.Uint16(p)), 0.0
			if t == Q4_1 {
				m = f16ref(le.Uint16(p[2:]))
			} else {
				m = -8 * d
			}
			for j := range 16 {
				out[blk*32+j] = float64(p[off+j]&15)*d + m
				out[blk*32+j+16] = float64(p[off+j]>>4)*d + m
			}
		}
	}
	return out
}

func TestQuantizeDequantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, typ := range []TensorType{Q8_0, Q4_0, Q4_1} {
		t.Run(typ.String(), func(t *testing.T) {
			x := make([]float32, 32*50)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
			}
			copy(x[:32], make([]float32, 32)) // an all-zero block
			b, err := Quantize(x, typ)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != typ.RowBytes(len(x)) {
				t.Fatalf("%d bytes", len(b))
			}
			y := make([]float32, len(x))
			if err := Dequantize(y, b, typ); err != nil {
				t.Fatal(err)
			}
			ref := refDequant(typ, b, len(x))
			levels := map[TensorType]float64{Q8_0: 127, Q4_0: 8, Q4_1: 15}[typ]
			for i := range y {
				if math.Abs(float64(y[i])-ref[i]) > 1e-6*math.Abs(ref[i]) {
					t.Fatalf("element %d: %v, reference %v", i, y[i], ref[i])
				}
				blk := x[i/32*32 : i/32*32+32]
				var lo, hi float64
				for _, v := range blk {
					lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
				}
				// quantization error is at most one step (plus f16 rounding of d, m)
				if step := (hi - lo) / levels; math.Abs(float64(y[i]-x[i])) > step*1.01+1e-3*math.Max(-lo, hi) {
					t.Fatalf("element %d: %v quantized to %v (step %v)", i, x[i], y[i], step)
				}
			}
		})
	}
	if err := Dequantize(make([]float32, 32), make([]byte, 33), Q8_0); err == nil {
		t.Error("size mismatch accepted")
	}
	if err := Dequantize(make([]float32, 256), make([]byte, 84), Q2_K); err == nil {
		t.Error("Q2_K accepted")
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	meta := []KV{
		{"u8", TypeUint8, uint8(200)}, {"i8", TypeInt8, int8(-3)}, {"u16", TypeUint16, uint16(60000)},
		{"i16", TypeInt16, int16(-30000)}, {"u32", TypeUint32, uint32(4e9)}, {"i32", TypeInt32, int32(-2e9)},
		{"f32", TypeFloat32, float32(1.5)}, {"b", TypeBool, true}, {"s", TypeString, "héllo"},
		{"u64", TypeUint64, uint64(1 << 60)}, {"i64", TypeInt64, int64(-1 << 60)}, {"f64", TypeFloat64, 2.25},
		{"general.alignment", TypeUint32, uint32(64)},
		{"as", TypeArray, []string{"a", "", "ccc"}}, {"ai32", TypeArray, []int32{1, -2}},
		{"af32", TypeArray, []float32{0.5}}, {"ab", TypeArray, []bool{true, false}}, {"au8", TypeArray, []uint8{}},
		{"nested", TypeArray, []any{[]uint32{1, 2}, []any{[]string{"x"}}, []any{}}},
	}
	ts := []WriteTensor{{Name: "a", Dims: []uint64{3}, Type: F32, Data: []float32{1, 2, 3}},
		{Name: "b", Dims: []uint64{32, 2}, Type: Q8_0, Data: make([]float32, 64)}}
	b := encode(t, meta, ts)
	f, err := Parse(bytes.NewReader(b), int64(len(b)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(meta, f.KV); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 || f.Tensors[1].Offset != 64 {
		t.Errorf("alignment %d, data offset %d, tensors %+v", f.Alignment, f.DataOffset, f.Tensors)
	}
	if u, err := f.Uint("u32"); err != nil || u != 4e9 {
		t.Errorf("Uint: %v %v", u, err)
	}
	if _, err := f.Uint("i64"); !errors.Is(err, ErrFormat) {
		t.Errorf("negative Uint: %v", err)
	}
	if _, err := f.String("missing"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := f.String("u8"); !errors.Is(err, ErrFormat) {
		t.Errorf("wrong type: %v", err)
	}
	if v, _ := f.Float("f32"); v != 1.5 {
		t.Errorf("Float %v", v)
	}
}

// putU64 overwrites the u64 at off.
func putU64(b []byte, off int, v uint64) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

func TestParseErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	meta, ts, _ := tinyLlama(rng, true, Q4_1)
	good := encode(t, meta, ts)
	one := encode(t, []KV{{Key: "general.architecture", Value: "llama"}}, []WriteTensor{{Name: "t.weight", Dims: []uint64{32}, Type: Q4_0, Data: make([]float32, 32)}})
	// offsets in `one`: header 24, key len 24, key 32..52, type 52, value len 56, value 64..69,
	// tensor name len 69, name 77..85, n_dims 85, ne0 89, type 97, offset 101.
	tensorType := bytes.Clone(one)
	binary.LittleEndian.PutUint32(tensorType[97:], 99)
	valueType := bytes.Clone(one)
	binary.LittleEndian.PutUint32(valueType[52:], 77)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"magic", append([]byte("GGML"), good[4:]...), "not a GGUF file"},
		{"version", append(append([]byte("GGUF"), 4, 0, 0, 0), good[8:]...), "unsupported GGUF version 4"},
		{"tensor count", putU64(good, 8, 1<<40), "tensor count"},
		{"kv count", putU64(good, 16, 1<<62), "metadata count"},
		{"key length", putU64(one, 24, 1<<63), "key length"},
		{"string length", putU64(one, 56, 1<<50), "string length"},
		{"value type", valueType, "unknown value type 77"},
		{"tensor type", tensorType, `tensor "t.weight": unknown ggml type 99`},
		{"offset", putU64(one, 101, 1<<20), `tensor "t.weight": data`},
		{"misaligned", putU64(one, 101, 8), "not a multiple of the alignment"},
		{"zero dim", putU64(one, 89, 0), "dimension 0 is 0"},
		{"block size", putU64(one, 89, 16), "not a multiple of the Q4_0 block size"},
		{"truncated data", one[:len(one)-15], "past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.b), int64(len(tc.b)), "bad.gguf")
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.gguf") {
				t.Errorf("error %v, want ErrFormat naming bad.gguf and containing %q", err, tc.want)
			}
		})
	}
	v2 := bytes.Clone(one)
	v2[4] = 2
	if f, err := Parse(bytes.NewReader(v2), int64(len(v2)), "v2"); err != nil || f.Version != 2 {
		t.Errorf("GGUF v2: %v", err)
	}
	// Every truncation of a valid file fails cleanly.
	for n := 0; n < len(good); n += 1 + n/50 {
		if _, err := Parse(bytes.NewReader(good[:n]), int64(n), "cut"); err == nil {
			t.Fatalf("prefix of %d bytes parsed", n)
		}
	}
}

func TestModelErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	meta, ts, _ := tinyLlama(rng, true, F32)
	withArch := func(a string) []KV {
		m := append([]KV(nil), meta...)
		m[0].Value = a
		return m
	}
	for _, tc := range []struct {
		name string
		meta []KV
		ts   []WriteTensor
		want string
	}{
		{"arch", withArch("mamba"), ts, `unsupported architecture "mamba"`},
		{"unmapped", meta, append(ts[:len(ts):len(ts)], WriteTensor{Name: "blk.0.attn_sinks.weight", Dims: []uint64{4}, Type: F32, Data: make([]float32, 4)}), `"blk.0.attn_sinks.weight" has no llama mapping`},
		{"no hidden", meta[:3], ts, "llama.embedding_length"},
		{"qwen2 without biases", qwen2Meta(meta), ts, "qwen2 needs q/k/v biases, blk.0.attn_q.bias is missing"},
		{"bad rope_freqs", meta, append(ts[:len(ts):len(ts)], ropeFreqsTensor(meta, 3)), "rope_freqs.weight: factors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenModel(writeFile(t, encode(t, tc.meta, tc.ts)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.gguf") {
				t.Errorf("error %v, want one naming m.gguf and containing %q", err, tc.want)
			}
		})
	}
	_, err := OpenModel(writeFile(t, encode(t, withArch("qwen3"), ts)))
	if !errors.Is(err, ErrUnsupportedArchitecture) || !strings.Contains(err.Error(), fmt.Sprint(SupportedArchitectures())) {
		t.Errorf("unsupported arch error %v does not list the supported ones", err)
	}
	// A Q2_K tensor parses but does not load.
	m, err := OpenModel(writeFile(t, encode(t, meta, ts)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ti, _ := m.File().Tensor("blk.0.ffn_up.weight")
	ti.Type = Q2_K
	if _, err := m.Load("model.layers.0.mlp.up_proj.weight"); err == nil || !strings.Contains(err.Error(), `"blk.0.ffn_up.weight": cannot dequantize type Q2_K`) {
		t.Errorf("Q2_K load: %v", err)
	}
	if _, err := m.Load("nope"); err == nil {
		t.Error("unknown tensor loaded")
	}
}

func FuzzParse(f *testing.F) {
	rng := rand.New(rand.NewPCG(13, 14))
	meta, ts, _ := tinyLlama(rng, true, Q8_0)
	for i := range ts {
		ts[i].Dims, ts[i].Data = ts[i].Dims[:1], ts[i].Data[:ts[i].Dims[0]]
	}
	f.Add(encode(f, meta, ts))
	f.Add(encode(f, []KV{{Key: "a", Value: []any{[]int8{1}}}}, []WriteTensor{{Name: "x", Dims: []uint64{32}, Type: Q4_1, Data: make([]float32, 32)}}))
	if b, err := os.ReadFile("testdata/tiny_llama.gguf"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			file.ReadFloat32(ti.Name)
		}
		if m, err := NewModel(file); err == nil {
			for _, n := range m.Names() {
				m.Load(n)
			}
		}
	})
}

// TestSmolLM2 opens the real SmolLM2-135M-Instruct Q4_1 GGUF named by
// OPTIMA_SMOLLM2_GGUF and compares q/k rows with gguf-py
// (testdata/smollm2_rows.json).
func TestSmolLM2(t *testing.T) {
	path := os.Getenv("OPTIMA_SMOLLM2_GGUF")
	if path == "" {
		t.Skip("OPTIMA_SMOLLM2_GGUF not set")
	}
	m, err := OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Config()
	got := []any{c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim,
		c.VocabSize, c.RopeTheta, c.TieWordEmbeddings, c.RMSNormEps, c.BOSTokenID, c.EOSTokenID, c.MaxPositionEmbeddings}
	want := []any{30, 576, 1536, 9, 3, 64, 49152, 100000.0, true, 1e-5, 1, 2, 8192}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 49152 || tok.BOS() != 1 || tok.EOS() != 2 || tok.AddBOS() {
		t.Errorf("tokenizer: vocab %d, bos %d, eos %d, add bos %v", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.AddBOS())
	}
	if n := len(m.Names()); n != 272 {
		t.Errorf("%d tensors, want 272", n)
	}
	shapes := map[string][]int{
		"model.embed_tokens.weight":                      {49152, 576},
		"model.norm.weight":                              {576},
		"model.layers.7.self_attn.q_proj.weight":         {576, 576},
		"model.layers.7.self_attn.k_proj.weight":         {192, 576},
		"model.layers.7.self_attn.v_proj.weight":         {192, 576},
		"model.layers.7.self_attn.o_proj.weight":         {576, 576},
		"model.layers.7.mlp.gate_proj.weight":            {1536, 576},
		"model.layers.7.mlp.down_proj.weight":            {576, 1536},
		"model.layers.7.post_attention_layernorm.weight": {576},
	}
	for _, n := range m.Names() {
		tn, err := m.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(tn.Data) != tn.Numel() {
			t.Errorf("%s: %d values for shape %v", n, len(tn.Data), tn.Shape)
		}
		if s, ok := shapes[n]; ok && !cmp.Equal(s, tn.Shape) {
			t.Errorf("%s: shape %v, want %v", n, tn.Shape, s)
		}
	}
	raw, err := os.ReadFile("testdata/smollm2_rows.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows map[string]struct {
		Rows   []int
		Values []string
	}
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	for n, r := range rows {
		tn, err := m.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		in := tn.Shape[1]
		for k, i := range r.Rows {
			if diff := cmp.Diff(b64floats(t, r.Values[k]), tn.Data[i*in:(i+1)*in]); diff != "" {
				t.Errorf("%s row %d differs from gguf-py:\n%s", n, i, diff)
			}
		}
	}
}

// BenchmarkDequantizeQ4_1 on a 1536×576 matrix. Sample (2-core EPYC, busy):
// BenchmarkDequantizeQ4_1-2   811   1453184 ns/op   1.643 ns/elem
func BenchmarkDequantizeQ4_1(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 16))
	x := make([]float32, 1536*576)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	q, err := Quantize(x, Q4_1)
	if err != nil {
		b.Fatal(err)
	}
	y := make([]float32, len(x))
	for b.Loop() {
		Dequantize(y, q, Q4_1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
}

// qwen2Meta renames meta's llama.* keys to qwen2.* and sets the architecture.
func qwen2Meta(meta []KV) []KV {
	out := make([]KV, len(meta))
	for i, kv := range meta {
		if rest, ok := strings.CutPrefix(kv.Key, "llama."); ok {
			kv.Key = "qwen2." + rest
		}
		if kv.Key == "general.architecture" {
			kv.Value = "qwen2"
		}
		out[i] = kv
	}
	return out
}

// ropeFreqsTensor is a rope_freqs.weight whose factors (1, 3, 1, 3, ...)
// fit no llama3 scaling, sized for meta's head dimension.
func ropeFreqsTensor(meta []KV, v float32) WriteTensor {
	var hidden, heads uint32
	for _, kv := range meta {
		switch kv.Key {
		case "llama.embedding_length":
			hidden = kv.Value.(uint32)
		case "llama.attention.head_count":
			heads = kv.Value.(uint32)
		}
	}
	n := int(hidden / heads / 2)
	data := make([]float32, n)
	for i := range data {
		data[i] = 1
		if i%2 == 1 {
			data[i] = v
		}
	}
	return WriteTensor{Name: "rope_freqs.weight", Dims: []uint64{uint64(n)}, Type: F32, Data: data}
}
