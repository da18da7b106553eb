package tokenizer

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// hfAddedToken is one entry of tokenizer.json's "added_tokens" (and, without
// the id, of tokenizer_config.json's "added_tokens_decoder").
type hfAddedToken struct {
	ID         *int32 `json:"id,omitempty"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedTokens lists the tokens Encode matches whole, in id order.
func (t *BPE) addedTokens() []hfAddedToken {
	var out []hfAddedToken
	for i, tok := range t.cfg.Tokens {
		id := int32(i)
		if tok != "" && t.isAdded(id) && inByteAlphabet(tok) && t.vocab[tok] == id {
			out = append(out, hfAddedToken{ID: &id, Content: tok, Special: t.tokenType(id) == TokenControl})
		}
	}
	return out
}

// HFTokenizerJSON returns a Hugging Face tokenizer.json (tokenizers format
// "1.0") that encodes and decodes as t does: a BPE model with t's vocabulary
// (under the spelling NewBPE files each token), merges and ignore_merges,
// the pre-tokenizer named by BPEConfig.Pre in tokenizers' terms, the
// normalizer of BPEConfig.Normalizer, control and
// user-defined tokens as added tokens (control ones special), a ByteLevel
// decoder, and a TemplateProcessing post-processor that prepends BOS when
// AddBOS is set and appends EOS when AddEOS is set. Load the directory holding it and HFTokenizerConfigJSON's
// output with transformers' AutoTokenizer.from_pretrained(dir). A token
// string listed under several ids keeps only the id Encode uses.
//
// The error is from JSON encoding and does not happen for a BPE built by
// NewBPE.
func (t *BPE) HFTokenizerJSON() ([]byte, error) {
	added := t.addedTokens()
	if added == nil {
		added = []hfAddedToken{}
	}
	post := templateJSON(t.cfg.Tokens, t.cfg.BOS, t.cfg.EOS, t.cfg.AddBOS, t.cfg.AddEOS)

	// The vocabulary is written by hand to keep id order.
	var vocab bytes.Buffer
	vocab.WriteByte('{')
	first := true
	for i, tok := range t.cfg.Tokens {
		key := vocabKey(tok)
		if t.vocab[key] != int32(i) {
			continue
		}
		if !first {
			vocab.WriteByte(',')
		}
		first = false
		k, err := marshal(key, false)
		if err != nil {
			return nil, err
		}
		vocab.Write(bytes.TrimSuffix(k, []byte("\n")))
		vocab.WriteByte(':')
		vocab.WriteString(strconv.Itoa(i))
	}
	vocab.WriteByte('}')
	merges := t.cfg.Merges
	if merges == nil {
		merges = []string{}
	}

	doc := struct {
		Version       string          `json:"version"`
		Truncation    any             `json:"truncation"`
		Padding       any             `json:"padding"`
		AddedTokens   []hfAddedToken  `json:"added_tokens"`
		Normalizer    any             `json:"normalizer"`
		PreTokenizer  any             `json:"pre_tokenizer"`
		PostProcessor any             `json:"post_processor"`
		Decoder       any             `json:"decoder"`
		Model         json.RawMessage `json:"model"`
	}{
		Version:       "1.0",
		AddedTokens:   added,
		Normalizer:    normalizerJSON(t.cfg.Normalizer),
		PreTokenizer:  t.pre.hfPre(),
		PostProcessor: post,
		Decoder:       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
	}
	model, err := marshal(struct {
		Type                    string          `json:"type"`
		Dropout                 any             `json:"dropout"`
		UnkToken                any             `json:"unk_token"`
		ContinuingSubwordPrefix any             `json:"continuing_subword_prefix"`
		EndOfWordSuffix         any             `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Vocab                   json.RawMessage `json:"vocab"`
		Merges                  []string        `json:"merges"`
	}{Type: "BPE", Vocab: vocab.Bytes(), Merges: merges, IgnoreMerges: t.cfg.IgnoreMerges}, false)
	if err != nil {
		return nil, err
	}
	doc.Model = model
	return marshal(doc, true)
}

// marshal is json.Marshal without HTML escaping ("<|im_start|>" stays
// readable), indented by one space when indent is set, newline-terminated.
func marshal(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", " ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// templateJSON is a TemplateProcessing post_processor that puts BOS before
// and EOS after each sequence as addBOS and addEOS say.
func templateJSON(tokens []string, bos, eos int32, addBOS, addEOS bool) map[string]any {
	special := map[string]any{}
	sp := func(id int32, typeID int) map[string]any {
		tok := tokens[id]
		special[tok] = map[string]any{"id": tok, "ids": []int32{id}, "tokens": []string{tok}}
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": typeID}}
	}
	var single, pair []any
	for k, seq := range []string{"A", "B"} {
		var part []any
		if addBOS {
			part = append(part, sp(bos, k))
		}
		part = append(part, seqPiece(seq, k))
		if addEOS {
			part = append(part, sp(eos, k))
		}
		if k == 0 {
			single = part
		}
		pair = append(pair, part...)
	}
	return map[string]any{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special}
}

// normalizerJSON is the tokenizers normalizer section for steps (nil for
// none, one step as is, several as a Sequence).
func normalizerJSON(steps []NormalizerStep) any {
	var out []any
	for _, st := range steps {
		switch st.Type {
		case "Prepend":
			out = append(out, map[string]any{"type": "Prepend", "prepend": st.Content})
		case "Replace":
			out = append(out, map[string]any{"type": "Replace", "pattern": map[string]any{"String": st.Pattern}, "content": st.Content})
		default:
			out = append(out, map[string]any{"type": st.Type})
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return map[string]any{"type": "Sequence", "normalizers": out}
}

func seqPiece(id string, typeID int) map[string]any {
	return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typeID}}
}

// HFTokenizerConfigJSON returns the tokenizer_config.json that goes with
// HFTokenizerJSON: tokenizer class PreTrainedTokenizerFast, add_bos_token
// and add_eos_token from AddBOS and AddEOS, the BOS and EOS token strings, the added
// tokens, and clean_up_tokenization_spaces false so that decode returns
// exactly what Decode does. Unknown and padding tokens and the chat template
// are not part of BPEConfig and are not written.
//
// The error is from JSON encoding and does not happen for a BPE built by
// NewBPE.
func (t *BPE) HFTokenizerConfigJSON() ([]byte, error) {
	dec := map[string]hfAddedToken{}
	for _, a := range t.addedTokens() {
		id := *a.ID
		a.ID = nil
		dec[strconv.Itoa(int(id))] = a
	}
	tokOrNil := func(id int32) any {
		if id < 0 {
			return nil
		}
		return t.cfg.Tokens[id]
	}
	return marshal(map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"add_bos_token":                t.cfg.AddBOS,
		"add_eos_token":                t.cfg.AddEOS,
		"bos_token":                    tokOrNil(t.cfg.BOS),
		"eos_token":                    tokOrNil(t.cfg.EOS),
		"clean_up_tokenization_spaces": false,
		"added_tokens_decoder":         dec,
	}, true)
}
