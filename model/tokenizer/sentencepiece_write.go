package tokenizer

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// addedTokens lists the tokens Encode matches whole, in id order.
func (t *SentencePiece) addedTokens() []hfAddedToken {
	out := []hfAddedToken{}
	if t.cfg.TokenTypes == nil {
		return out
	}
	for i, tok := range t.cfg.Tokens {
		id := int32(i)
		ty := t.cfg.TokenTypes[i]
		if (ty == TokenControl || ty == TokenUserDefined) && t.vocab[tok] == id {
			out = append(out, hfAddedToken{ID: &id, Content: tok, Special: ty == TokenControl})
		}
	}
	return out
}

// HFTokenizerJSON returns a Hugging Face tokenizer.json (tokenizers format
// "1.0") that encodes and decodes as t does, which SentencePieceFromHFJSON
// and LoadHFJSON read back: a BPE model with t's vocabulary (a token string
// listed under several ids keeps the id Encode uses), merges as pairs,
// unk_token, fuse_unk, byte_fallback and ignore_merges, the normalizer,
// pre-tokenizer and decoder steps, control and user-defined tokens as added
// tokens (control ones special, none normalized), and a TemplateProcessing
// post-processor adding BOS/EOS as AddBOS/AddEOS say. This is how a
// SentencePiece tokenizer read from a GGUF is written beside a pruned model.
//
// The error is from JSON encoding and does not happen for a tokenizer built
// by NewSentencePiece.
func (t *SentencePiece) HFTokenizerJSON() ([]byte, error) {
	var vocab bytes.Buffer
	vocab.WriteByte('{')
	first := true
	for i, tok := range t.cfg.Tokens {
		if t.vocab[tok] != int32(i) {
			continue
		}
		if !first {
			vocab.WriteByte(',')
		}
		first = false
		k, err := marshal(tok, false)
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
		merges = [][2]string{}
	}
	var unk any
	if t.cfg.Unk >= 0 {
		unk = t.cfg.Tokens[t.cfg.Unk]
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
		Merges                  [][2]string     `json:"merges"`
	}{Type: "BPE", UnkToken: unk, FuseUnk: t.cfg.FuseUnk, ByteFallback: t.cfg.ByteFallback,
		IgnoreMerges: t.cfg.IgnoreMerges, Vocab: vocab.Bytes(), Merges: merges}, false)
	if err != nil {
		return nil, err
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
		AddedTokens:   t.addedTokens(),
		Normalizer:    normalizerJSON(t.cfg.Normalizer),
		PreTokenizer:  preTokenizerJSON(t.cfg.PreTokenizer),
		PostProcessor: templateJSON(t.cfg.Tokens, t.cfg.BOS, t.cfg.EOS, t.cfg.AddBOS, t.cfg.AddEOS),
		Decoder:       decoderJSON(t.cfg.Decoder),
		Model:         model,
	}
	return marshal(doc, true)
}

// sequence returns nil, the one step, or a Sequence of steps under key.
func sequence(key string, steps []any) any {
	switch len(steps) {
	case 0:
		return nil
	case 1:
		return steps[0]
	}
	return map[string]any{"type": "Sequence", key: steps}
}

func preTokenizerJSON(steps []PreTokenizerStep) any {
	var out []any
	for _, st := range steps {
		switch st.Type {
		case "Metaspace":
			out = append(out, map[string]any{"type": "Metaspace", "replacement": st.Replacement, "prepend_scheme": st.PrependScheme, "split": st.Split})
		case "Split":
			out = append(out, map[string]any{"type": "Split", "pattern": map[string]any{"String": st.Pattern}, "behavior": st.Behavior, "invert": false})
		}
	}
	return sequence("pretokenizers", out)
}

func decoderJSON(steps []DecoderStep) any {
	var out []any
	for _, st := range steps {
		switch st.Type {
		case "Replace":
			out = append(out, map[string]any{"type": "Replace", "pattern": map[string]any{"String": st.Pattern}, "content": st.Content})
		case "Strip":
			out = append(out, map[string]any{"type": "Strip", "content": st.Content, "start": st.Start, "stop": st.Stop})
		case "Metaspace":
			out = append(out, map[string]any{"type": "Metaspace", "replacement": st.Replacement, "prepend_scheme": st.PrependScheme, "split": true})
		default:
			out = append(out, map[string]any{"type": st.Type})
		}
	}
	return sequence("decoders", out)
}

// HFTokenizerConfigJSON returns the tokenizer_config.json that goes with
// HFTokenizerJSON: tokenizer class PreTrainedTokenizerFast (so transformers
// keeps the file's pipeline), add_bos_token and add_eos_token from AddBOS
// and AddEOS (informative: transformers follows the post-processor), the
// BOS, EOS and unknown token strings, the added tokens, and
// clean_up_tokenization_spaces false so that decode returns exactly what
// Decode does.
//
// The error is from JSON encoding and does not happen for a tokenizer built
// by NewSentencePiece.
func (t *SentencePiece) HFTokenizerConfigJSON() ([]byte, error) {
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
		"unk_token":                    tokOrNil(t.cfg.Unk),
		"clean_up_tokenization_spaces": false,
		"added_tokens_decoder":         dec,
	}, true)
}
