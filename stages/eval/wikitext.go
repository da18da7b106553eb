package eval

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/optima-llm/optima/model/tokenizer"
)

// WikiText2TestFile is the path of the WikiText-2 raw test split under a data
// directory (see /work/shared/data/README.md).
const WikiText2TestFile = "wikitext-2-raw/wiki.test.raw"

// WikiText2Text returns the WikiText-2 (raw) test split as the perplexity
// papers feed it to the tokenizer: "\n\n".join(load_dataset("wikitext",
// "wikitext-2-raw-v1", split="test")["text"]) (SparseGPT datautils.py,
// Wanda lib/data.py get_wikitext2).
//
// The Hugging Face rows are built by the dataset's loading script
// (wikitext.py, _generate_examples): one row per line of wiki.test.raw, the
// line *with* its trailing "\n" when line.strip() is non-empty, and "" for a
// blank line (in wiki.test.raw every blank line is " \n"). So the rows keep
// their newline; only blank lines become empty rows. dataDir is the data
// directory holding wikitext-2-raw/wiki.test.raw. Errors name the file.
func WikiText2Text(dataDir string) (string, error) {
	path := filepath.Join(dataDir, WikiText2TestFile)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("eval: wikitext-2: %w", err)
	}
	defer f.Close()
	rows, err := hfTextRows(bufio.NewReader(f))
	if err != nil {
		return "", fmt.Errorf("eval: wikitext-2: read %s: %w", path, err)
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("eval: wikitext-2: %s is empty", path)
	}
	return strings.Join(rows, "\n\n"), nil
}

// hfTextRows splits r into rows as the Hugging Face wikitext script does:
// each line keeps its "\n" unless it is blank (only whitespace), which
// becomes "".
func hfTextRows(r *bufio.Reader) ([]string, error) {
	var rows []string
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if strings.TrimSpace(line) == "" {
				line = ""
			}
			rows = append(rows, line)
		}
		if err != nil {
			if err == io.EOF {
				return rows, nil
			}
			return nil, err
		}
	}
}

// Tokenize encodes text as Hugging Face's tokenizer(text) does with its
// default add_special_tokens=True for a causal LM: the ids of text, with the
// BOS id prepended when tok.AddBOS() (Llama 2/3 tokenizers) and nothing
// added otherwise (SmolLM2: add_bos_token is false). This is how SparseGPT
// and Wanda tokenize the whole WikiText-2 test string before cutting it into
// windows, so only the first window starts with BOS.
func Tokenize(tok tokenizer.Tokenizer, text string) []int32 {
	ids := tok.Encode(text)
	if tok.AddBOS() && tok.BOS() >= 0 {
		ids = append([]int32{tok.BOS()}, ids...)
	}
	return ids
}
