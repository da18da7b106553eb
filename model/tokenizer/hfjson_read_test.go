package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// encodeAll checks that tok encodes every text to want (at most 5 errors).
func encodeAll(t *testing.T, tok *BPE, texts []string, want [][]int32) {
	t.Helper()
	bad := 0
	for i, s := range texts {
		if diff := cmp.Diff(want[i], tok.Encode(s)); diff != "" {
			if bad++; bad <= 5 {
				t.Errorf("Encode(%q) (-want +got):\n%s", s, diff)
			}
		}
	}
}

// TestFromHFJSONRoundTrip reads back what HFTokenizerJSON and
// HFTokenizerConfigJSON write, for each pre-tokenizer of the fixture, with
// merges as strings and as pairs.
func TestFromHFJSONRoundTrip(t *testing.T) {
	fx := loadFixture(t)
	canonical := map[string]string{"gpt2": "gpt2", "smollm": "gpt2", "smollm-digits": "smollm-digits", "llama-bpe": "llama-bpe", "llama3": "llama-bpe", "qwen2": "qwen2"}
	for _, c := range []struct {
		pre    string
		addBOS bool
		pairs  bool
	}{
		{"gpt2", false, false}, {"smollm", true, true}, {"smollm-digits", true, false},
		{"llama-bpe", false, true}, {"llama3", true, false}, {"qwen2", false, false},
	} {
		t.Run(c.pre, func(t *testing.T) {
			cfg := fx.config(c.pre)
			cfg.AddBOS, cfg.BOS = c.addBOS, 1
			orig, err := NewBPE(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tj, err := orig.HFTokenizerJSON()
			if err != nil {
				t.Fatal(err)
			}
			cj, err := orig.HFTokenizerConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			if c.pairs {
				tj = mergesAsPairs(t, tj)
			}
			got, err := FromHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			want := cfg
			want.Pre = canonical[c.pre]
			if diff := cmp.Diff(want, got.Config()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			ids := make([][]int32, len(fx.Texts))
			for i, s := range fx.Texts {
				ids[i] = orig.Encode(s)
			}
			encodeAll(t, got, fx.Texts, ids)
			// Without tokenizer_config.json, the post_processor still says
			// whether BOS is added.
			bare, err := FromHFJSON(tj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bare.AddBOS() != c.addBOS || (c.addBOS && bare.BOS() != 1) || bare.EOS() != -1 {
				t.Errorf("without tokenizer_config.json: AddBOS %v BOS %d EOS %d", bare.AddBOS(), bare.BOS(), bare.EOS())
			}
		})
	}
}

// mergesAsPairs rewrites model.merges of a tokenizer.json as ["a", "b"]
// pairs, as tokenizers ≥ 0.20 saves them.
func mergesAsPairs(t *testing.T, tj []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(tj, &doc); err != nil {
		t.Fatal(err)
	}
	m := doc["model"].(map[string]any)
	var pairs [][]string
	for _, s := range m["merges"].([]any) {
		a, b, _ := strings.Cut(s.(string), " ")
		pairs = append(pairs, []string{a, b})
	}
	m["merges"] = pairs
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFromHFJSONPythonFiles reads tokenizer.json files saved by Hugging Face
// tokenizers (tools/oracle/tokenizer_hfjson_files.py) and checks the
// fixture's golden ids, which that same tokenizer produced.
func TestFromHFJSONPythonFiles(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range []struct {
		pre      string
		addBOS   bool
		bos, eos int32
	}{
		// smollm-digits: its tokenizer_config.json sets add_bos_token, but
		// transformers 5.24 ignores that flag when tokenizer.json exists
		// and its post_processor is null: tokenizer("hi") is [439].
		{"gpt2", false, -1, -1}, {"smollm-digits", false, 1, 2}, {"llama-bpe", true, 1, -1}, {"qwen2", false, -1, -1},
	} {
		t.Run(c.pre, func(t *testing.T) {
			dir := filepath.Join("testdata", "hf", c.pre)
			tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			tok, err := FromHFJSON(tj, cj)
			if err != nil {
				t.Fatal(err)
			}
			want := fx.config(c.pre)
			want.BOS, want.EOS, want.AddBOS = c.bos, c.eos, c.addBOS
			if diff := cmp.Diff(want, tok.Config()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			encodeAll(t, tok, fx.Texts, fx.IDs[c.pre])
		})
	}
}

func TestFromHFJSONErrors(t *testing.T) {
	fx := loadFixture(t)
	orig, err := NewBPE(fx.config("gpt2"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := orig.HFTokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	// edit applies a change to the parsed tokenizer.json.
	edit := func(f func(doc, model map[string]any)) []byte {
		var doc map[string]any
		if err := json.Unmarshal(base, &doc); err != nil {
			t.Fatal(err)
		}
		f(doc, doc["model"].(map[string]any))
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	split := func(re string, useRegex bool) any {
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": useRegex},
		}}
	}
	for _, c := range []struct {
		name   string
		tj     []byte
		cj     string
		substr string
	}{
		{"not json", []byte("{"), "", "tokenizer.json: "},
		{"no model", []byte(`{"version":"1.0"}`), "", "tokenizer.json: no model section"},
		{"wordpiece", edit(func(_, m map[string]any) { m["type"] = "WordPiece" }), "", `tokenizer.json: model: type "WordPiece" is not supported`},
		{"dropout", edit(func(_, m map[string]any) { m["dropout"] = 0.1 }), "", "tokenizer.json: model: dropout"},
		{"byte fallback", edit(func(_, m map[string]any) { m["byte_fallback"] = true }), "", "tokenizer.json: model: byte_fallback"},
		{"suffix", edit(func(_, m map[string]any) { m["end_of_word_suffix"] = "</w>" }), "", "tokenizer.json: model: end_of_word_suffix"},
		{"hole", edit(func(_, m map[string]any) { delete(m["vocab"].(map[string]any), "e") }), "", "tokenizer.json: model.vocab: id"},
		{"huge id", edit(func(_, m map[string]any) { m["vocab"].(map[string]any)["zz"] = 1 << 40 }), "", "tokenizer.json: model.vocab: token \"zz\""},
		{"repeated id", edit(func(_, m map[string]any) { m["vocab"].(map[string]any)["zz"] = 5 }), "", "tokenizer.json: model.vocab: id 5 is given to both"},
		{"bad merge", edit(func(_, m map[string]any) { m["merges"] = []any{3} }), "", "tokenizer.json: model.merges: merge 0 is 3"},
		{"merge of unknown", edit(func(_, m map[string]any) { m["merges"] = []any{"q ζ"} }), "", "tokenizer.json: tokenizer: merge 0"},
		{"unk with missing byte", edit(func(_, m map[string]any) {
			m["unk_token"] = "<unk>"
			v := m["vocab"].(map[string]any)
			v["zz"] = v["Ā"]
			delete(v, "Ā")
		}), "", "tokenizer.json: model: unk_token"},
		{"normalizer", edit(func(d, _ map[string]any) { d["normalizer"] = map[string]any{"type": "Lowercase"} }), "", "tokenizer.json: normalizer: type Lowercase is not supported"},
		{"normalized added token", edit(func(d, _ map[string]any) {
			d["normalizer"] = map[string]any{"type": "Prepend", "prepend": "x"}
			d["added_tokens"] = []any{map[string]any{"id": 860, "content": "<x>", "special": true, "normalized": true}}
		}), "", `tokenizer.json: added_tokens: "<x>" (id 860) is normalized`},
		{"post processor", edit(func(d, _ map[string]any) { d["post_processor"] = map[string]any{"type": "Fancy"} }), "", "tokenizer.json: post_processor: type Fancy is not supported"},

		{"no pre", edit(func(d, _ map[string]any) { d["pre_tokenizer"] = nil }), "", "tokenizer.json: pre_tokenizer: null"},
		{"metaspace", edit(func(d, _ map[string]any) { d["pre_tokenizer"] = map[string]any{"type": "Metaspace"} }), "", "tokenizer.json: pre_tokenizer: Metaspace is not supported"},
		{"prefix space", edit(func(d, _ map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true}
		}), "", "tokenizer.json: pre_tokenizer: ByteLevel with add_prefix_space"},
		{"prefix space default", edit(func(d, _ map[string]any) { d["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }), "", "add_prefix_space"},
		{"unknown regex", edit(func(d, _ map[string]any) { d["pre_tokenizer"] = split(`\p{L}+`, false) }), "", `tokenizer.json: pre_tokenizer: Split regex "\\p{L}+" is not supported`},
		{"split with regex bytelevel", edit(func(d, _ map[string]any) { d["pre_tokenizer"] = split(llama3Pattern, true) }), "", "tokenizer.json: pre_tokenizer: Split+ByteLevel is supported only"},
		{"digits grouped", edit(func(d, _ map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Digits", "individual_digits": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}}
		}), "", "tokenizer.json: pre_tokenizer: Digits+ByteLevel"},
		{"wordpiece decoder", edit(func(d, _ map[string]any) { d["decoder"] = map[string]any{"type": "WordPiece"} }), "", "tokenizer.json: decoder: type WordPiece"},
		{"added with space", edit(func(d, _ map[string]any) {
			d["added_tokens"] = []any{map[string]any{"id": 859, "content": "<think> x", "special": false}}
		}), "", `tokenizer.json: added_tokens: id 859 is "<think> x" but the vocab has "<think>"`},
		{"added new with space", edit(func(d, _ map[string]any) {
			d["added_tokens"] = []any{map[string]any{"id": 860, "content": "<a b>", "special": true}}
		}), "", `tokenizer.json: added_tokens: "<a b>" (id 860) has characters outside`},
		{"added rstrip", edit(func(d, _ map[string]any) {
			d["added_tokens"] = []any{map[string]any{"id": 860, "content": "<x>", "special": true, "rstrip": true}}
		}), "", `tokenizer.json: added_tokens: "<x>" (id 860): lstrip`},
		{"template unknown", edit(func(d, _ map[string]any) {
			d["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}}, "special_tokens": map[string]any{}}
		}), "", `tokenizer.json: post_processor: special token "<s>"`},
		{"config not json", base, "{", "tokenizer_config.json: "},
		{"config unknown bos", base, `{"bos_token": "<s>"}`, `tokenizer_config.json: bos_token: "<s>" is not a token`},
		{"config bad eos", base, `{"eos_token": 3}`, "tokenizer_config.json: eos_token: 3 is neither"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromHFJSON(c.tj, []byte(c.cj))
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Errorf("error %v, want one containing %q", err, c.substr)
			}
		})
	}
}

func FuzzFromHFJSON(f *testing.F) {
	for _, pre := range []string{"gpt2", "smollm-digits", "llama-bpe", "qwen2"} {
		tj, _ := os.ReadFile(filepath.Join("testdata", "hf", pre, "tokenizer.json"))
		if len(tj) > 0 {
			// A small model keeps the fuzzer fast: the first 280 tokens.
			f.Add(shrinkTokenizerJSON(tj), []byte(`{"bos_token": "<|im_start|>", "add_bos_token": true}`))
		}
	}
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, tj, cj []byte) {
		tok, err := FromHFJSON(tj, cj)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer.json") && !strings.HasPrefix(err.Error(), "tokenizer_config.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		ids := tok.Encode("Hello, <|im_start|> wörld 123!")
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		tok.Decode(ids)
	})
}

// shrinkTokenizerJSON keeps the ids below 280 and the merges among them.
func shrinkTokenizerJSON(tj []byte) []byte {
	var doc map[string]any
	if json.Unmarshal(tj, &doc) != nil {
		return tj
	}
	m := doc["model"].(map[string]any)
	v := m["vocab"].(map[string]any)
	for k, id := range v {
		if id.(float64) >= 280 {
			delete(v, k)
		}
	}
	var merges []any
	for _, p := range m["merges"].([]any) {
		pp := p.([]any)
		if _, ok := v[pp[0].(string)+pp[1].(string)]; ok {
			merges = append(merges, p)
		}
	}
	m["merges"] = merges
	var added []any
	for _, a := range doc["added_tokens"].([]any) {
		if a.(map[string]any)["id"].(float64) < 280 {
			added = append(added, a)
		}
	}
	doc["added_tokens"] = added
	out, _ := json.Marshal(doc)
	return out
}

// TestFromHFJSONRoundTripOptions writes and reads back a byte-level BPE with
// the options Llama 3 and Qwen2 files use (ignore_merges, an NFC
// normalizer) and an EOS template, and checks that ignore_merges changes
// the ids of a word whose merges do not rebuild it.
func TestFromHFJSONRoundTripOptions(t *testing.T) {
	fx := loadFixture(t)
	cfg := fx.config("llama-bpe")
	cfg.BOS, cfg.EOS, cfg.AddBOS, cfg.AddEOS = 1, 0, true, true
	cfg.IgnoreMerges = true
	cfg.Normalizer = []NormalizerStep{{Type: "NFC"}, {Type: "Replace", Pattern: "ﬁ", Content: "fi"}}
	orig, err := NewBPE(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := orig.HFTokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	cj, err := orig.HFTokenizerConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromHFJSON(tj, cj)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cfg, got.Config()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	for _, s := range fx.Texts {
		if diff := cmp.Diff(orig.Encode(s), got.Encode(s)); diff != "" {
			t.Errorf("Encode(%q) (-orig +read):\n%s", s, diff)
		}
	}
	// NFC composes "e" + U+0301 into "é": the same ids as the composed text.
	if a, b := got.Encode("cafe\u0301"), got.Encode("caf\u00e9"); !cmp.Equal(a, b) {
		t.Errorf("NFC: %v vs %v", a, b)
	}
}

// TestIgnoreMerges checks ignore_merges on a vocabulary where a whole word
// is a token that its merges do not reach: with the flag the word is that
// token, without it the merged pieces.
func TestIgnoreMerges(t *testing.T) {
	cfg := BPEConfig{Tokens: []string{"a", "b", "c", "ab", "abc", "bc"}, Merges: []string{"b c", "a b"}, BOS: -1, EOS: -1}
	for _, c := range []struct {
		ignore bool
		want   []int32
	}{{false, []int32{0, 5}}, {true, []int32{4}}} {
		cfg.IgnoreMerges = c.ignore
		tok, err := NewBPE(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode("abc"); !cmp.Equal(got, c.want) {
			t.Errorf("IgnoreMerges %v: Encode(abc) = %v, want %v", c.ignore, got, c.want)
		}
	}
}

// TestResolveSpecials covers the post_processor shapes real files use and
// how tokenizer_config.json complements them (transformers 5.24 ignores
// its add_bos_token/add_eos_token when tokenizer.json exists).
func TestResolveSpecials(t *testing.T) {
	tokens := []string{"<|begin_of_text|>", "<|end_of_text|>", "a", "<s>", "</s>"}
	types := []int32{TokenControl, TokenControl, TokenNormal, TokenControl, TokenControl}
	tmpl := func(single string) string {
		return `{"type":"TemplateProcessing","single":` + single + `,"special_tokens":{` +
			`"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[0],"tokens":["<|begin_of_text|>"]},` +
			`"</s>":{"id":"</s>","ids":[4],"tokens":["</s>"]}}}`
	}
	bos := `{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}}`
	seq := `{"Sequence":{"id":"A","type_id":0}}`
	eos := `{"SpecialToken":{"id":"</s>","type_id":0}}`
	for _, c := range []struct {
		name, post, config string
		want               specials
	}{
		{"null", `null`, ``, specials{-1, -1, false, false}},
		{"null with config", `null`, `{"bos_token":"<s>","eos_token":"</s>","add_bos_token":true}`, specials{3, 4, false, false}},
		{"bytelevel (npm Llama 3)", `{"type":"ByteLevel"}`, `{"bos_token":"<|begin_of_text|>","eos_token":"<|end_of_text|>"}`, specials{0, 1, false, false}},
		{"template (Llama 3.0)", tmpl("[" + bos + "," + seq + "]"), ``, specials{0, -1, true, false}},
		{"sequence (Llama 3.1)", `{"type":"Sequence","processors":[{"type":"ByteLevel"},` + tmpl("["+bos+","+seq+"]") + `]}`,
			`{"bos_token":"<|begin_of_text|>","eos_token":"<|end_of_text|>"}`, specials{0, 1, true, false}},
		{"bos and eos", tmpl("[" + bos + "," + seq + "," + eos + "]"), `{"bos_token":"<s>"}`, specials{0, 4, true, true}},
		{"roberta", `{"type":"RobertaProcessing","cls":["<s>",3],"sep":["</s>",4]}`, ``, specials{3, 4, true, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolveSpecials(tokens, types, json.RawMessage(c.post), []byte(c.config))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
