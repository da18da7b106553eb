package tokenizer

import (
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// NormalizerStep is one Hugging Face tokenizers normalizer, applied to the
// text between added tokens before pre-tokenization (tokenizers'
// normalizers/*.rs). Type is one of:
//
//	"NFC", "NFD", "NFKC", "NFKD"  Unicode normalization forms (golang.org/x/text/unicode/norm)
//	"Prepend"                     Content is put before a non-empty text
//	"Replace"                     every occurrence of the literal Pattern becomes Content
//
// A "Sequence" normalizer is a []NormalizerStep.
type NormalizerStep struct {
	Type    string
	Pattern string
	Content string
}

// normalizerTypes lists the supported NormalizerStep types.
const normalizerTypes = "NFC, NFD, NFKC, NFKD, Prepend, Replace (with a String pattern), Sequence"

// checkNormalizer returns an error for an unknown step type or an empty
// Replace pattern.
func checkNormalizer(steps []NormalizerStep) error {
	for i, st := range steps {
		switch st.Type {
		case "NFC", "NFD", "NFKC", "NFKD", "Prepend":
		case "Replace":
			if st.Pattern == "" {
				return fmt.Errorf("tokenizer: normalizer %d: Replace with an empty pattern", i)
			}
		default:
			return fmt.Errorf("tokenizer: normalizer %d: type %q is not supported (supported: %s)", i, st.Type, normalizerTypes)
		}
	}
	return nil
}

// normalize applies steps to s in order. The steps must have passed
// checkNormalizer.
func normalize(steps []NormalizerStep, s string) string {
	for _, st := range steps {
		switch st.Type {
		case "NFC":
			s = norm.NFC.String(s)
		case "NFD":
			s = norm.NFD.String(s)
		case "NFKC":
			s = norm.NFKC.String(s)
		case "NFKD":
			s = norm.NFKD.String(s)
		case "Prepend":
			if s != "" {
				s = st.Content + s
			}
		case "Replace":
			s = strings.ReplaceAll(s, st.Pattern, st.Content)
		}
	}
	return s
}
