package eval

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Item is one multiple-choice question as lm-evaluation-harness v0.4 builds
// its loglikelihood requests: choice i is scored as the log-probability of
// Continuations[i] after Contexts[i]. Ordinary tasks repeat one context and
// vary the continuation (" " + choice); WinoGrande ("partial scoring",
// multiple_input in the harness) varies the context and repeats the
// continuation.
type Item struct {
	// Contexts and Continuations hold one string per choice.
	Contexts, Continuations []string
	// Choices are the harness's doc_to_choice strings (without the " "
	// target delimiter); acc_norm divides each choice's log-likelihood by
	// len(choice) in Unicode code points (Python's len of a str), as
	// lm_eval/api/task.py process_results does.
	Choices []string
	// Gold is the index of the correct choice.
	Gold int
	// Subject is the MMLU subject ("abstract_algebra"), empty otherwise.
	Subject string
}

// Task is a zero-shot task with its items in data-file order.
type Task struct {
	// Name is the task name (ZeroShotTasks).
	Name string
	// HasNorm reports whether lm-evaluation-harness reports acc_norm for the
	// task (ARC, PIQA, OpenBookQA; not WinoGrande or MMLU).
	HasNorm bool
	Items   []Item
}

// ZeroShotTasks are the tasks LoadTask knows, in the order of OPTIMA's
// Table 1.
var ZeroShotTasks = []string{"piqa", "arc_easy", "arc_challenge", "winogrande", "openbookqa", "mmlu"}

// Data files under the data directory (see its README.md).
const (
	ARCEasyFile      = "zeroshot/arc_easy.jsonl"
	ARCChallengeFile = "zeroshot/arc_challenge.jsonl"
	OpenBookQAFile   = "zeroshot/openbook_qa.jsonl"
	WinoGrandeFile   = "zeroshot/winogrande.jsonl"
	PIQAFile         = "zeroshot/piqa_valid.jsonl"
	PIQALabelsFile   = "zeroshot/piqa_valid-labels.lst"
	MMLUTestDir      = "mmlu/test"
)

// LoadTask reads the named task from dataDir and builds its items with
// lm-evaluation-harness v0.4's prompts (lm_eval/tasks/*/…yaml):
//
//   - arc_easy, arc_challenge: context "Question: {q}\nAnswer:" (the file's
//     query already holds "Question: {q}"), continuations " {choice}";
//   - piqa: "Question: {goal}\nAnswer:" with " {sol1}", " {sol2}";
//   - openbookqa: the bare question stem with " {choice}";
//   - winogrande: each option's sentence prefix as the context, " {rest of
//     the sentence}" as the continuation;
//   - mmlu: "The following are multiple choice questions (with answers)
//     about {subject with spaces}.\n\n{question.strip()}\nA. {c0}\nB. {c1}\n
//     C. {c2}\nD. {c3}\nAnswer:" with " A" … " D", over the 57 subjects in
//     file-name order.
//
// limit > 0 keeps the first limit items (for mmlu the first limit of each
// subject, as the harness's --limit applies per subtask). A UTF-8 byte
// order mark at the start of a file is skipped. Errors name the file and
// line.
func LoadTask(dataDir, name string, limit int) (*Task, error) {
	var (
		t   *Task
		err error
	)
	switch name {
	case "arc_easy", "arc_challenge":
		file := ARCEasyFile
		if name == "arc_challenge" {
			file = ARCChallengeFile
		}
		t, err = loadFile(dataDir, file, func(r io.Reader) (*Task, error) { return ParseChoiceJSONL(r, "\nAnswer:") })
	case "openbookqa":
		t, err = loadFile(dataDir, OpenBookQAFile, func(r io.Reader) (*Task, error) { return ParseChoiceJSONL(r, "") })
	case "winogrande":
		t, err = loadFile(dataDir, WinoGrandeFile, ParseWinoGrande)
	case "piqa":
		t, err = loadPIQA(dataDir)
	case "mmlu":
		return loadMMLU(dataDir, limit)
	default:
		return nil, fmt.Errorf("eval: unknown zero-shot task %q (known: %s)", name, strings.Join(ZeroShotTasks, ", "))
	}
	if err != nil {
		return nil, err
	}
	t.Name = name
	t.HasNorm = name != "winogrande"
	if limit > 0 && len(t.Items) > limit {
		t.Items = t.Items[:limit]
	}
	return t, nil
}

func loadFile(dataDir, file string, parse func(io.Reader) (*Task, error)) (*Task, error) {
	path := filepath.Join(dataDir, file)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	t, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return t, nil
}

// jsonLines calls fn with each non-blank line of r (numbered from 1),
// without a UTF-8 byte order mark at the start of r.
func jsonLines(r io.Reader, fn func(line int, b []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		if err := fn(n, b); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func checkGold(gold, n int) error {
	if n < 2 {
		return fmt.Errorf("%d choices, want at least 2", n)
	}
	if gold < 0 || gold >= n {
		return fmt.Errorf("gold %d outside [0, %d)", gold, n)
	}
	return nil
}

// ParseChoiceJSONL parses the ARC/OpenBookQA format, one JSON object a line:
// {"query": str, "choices": [str...], "gold": int}. Each item's context is
// query+suffix and its continuations are " "+choice. The task's Name and
// HasNorm are left for the caller.
func ParseChoiceJSONL(r io.Reader, suffix string) (*Task, error) {
	t := &Task{}
	err := jsonLines(r, func(_ int, b []byte) error {
		var d struct {
			Query   *string  `json:"query"`
			Choices []string `json:"choices"`
			Gold    *int     `json:"gold"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if d.Query == nil || d.Gold == nil {
			return fmt.Errorf("missing query or gold")
		}
		if err := checkGold(*d.Gold, len(d.Choices)); err != nil {
			return err
		}
		it := Item{Choices: d.Choices, Gold: *d.Gold}
		for _, c := range d.Choices {
			it.Contexts = append(it.Contexts, *d.Query+suffix)
			it.Continuations = append(it.Continuations, " "+c)
		}
		t.Items = append(t.Items, it)
		return nil
	})
	return t, err
}

// ParseWinoGrande parses {"context_options": [2 str], "continuation": str,
// "gold": int} lines. As the harness's winogrande task: the contexts are the
// options, the continuation is " "+strip(continuation), and the choices
// (whose lengths acc_norm would use) are the contexts.
func ParseWinoGrande(r io.Reader) (*Task, error) {
	t := &Task{}
	err := jsonLines(r, func(_ int, b []byte) error {
		var d struct {
			Options      []string `json:"context_options"`
			Continuation *string  `json:"continuation"`
			Gold         *int     `json:"gold"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if d.Continuation == nil || d.Gold == nil {
			return fmt.Errorf("missing continuation or gold")
		}
		if err := checkGold(*d.Gold, len(d.Options)); err != nil {
			return err
		}
		it := Item{Choices: d.Options, Gold: *d.Gold}
		for _, c := range d.Options {
			if c == "" {
				return fmt.Errorf("empty context option")
			}
			it.Contexts = append(it.Contexts, c)
			it.Continuations = append(it.Continuations, " "+pyStrip(*d.Continuation))
		}
		t.Items = append(t.Items, it)
		return nil
	})
	return t, err
}

func loadPIQA(dataDir string) (*Task, error) {
	qpath := filepath.Join(dataDir, PIQAFile)
	lpath := filepath.Join(dataDir, PIQALabelsFile)
	q, err := os.Open(qpath)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer q.Close()
	l, err := os.Open(lpath)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer l.Close()
	t, err := ParsePIQA(q, l)
	if err != nil {
		return nil, fmt.Errorf("eval: piqa (%s, %s): %w", qpath, lpath, err)
	}
	return t, nil
}

// ParsePIQA parses PIQA's original files: questions ({"goal", "sol1",
// "sol2"} per line) and labels (0 or 1 per line, same order). Context
// "Question: {goal}\nAnswer:", continuations " {sol1}", " {sol2}". A count
// mismatch is an error.
func ParsePIQA(questions, labels io.Reader) (*Task, error) {
	t := &Task{}
	err := jsonLines(questions, func(_ int, b []byte) error {
		var d struct {
			Goal *string `json:"goal"`
			Sol1 *string `json:"sol1"`
			Sol2 *string `json:"sol2"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if d.Goal == nil || d.Sol1 == nil || d.Sol2 == nil {
			return fmt.Errorf("missing goal, sol1 or sol2")
		}
		ctx := "Question: " + *d.Goal + "\nAnswer:"
		t.Items = append(t.Items, Item{
			Contexts:      []string{ctx, ctx},
			Continuations: []string{" " + *d.Sol1, " " + *d.Sol2},
			Choices:       []string{*d.Sol1, *d.Sol2},
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("questions: %w", err)
	}
	i := 0
	err = jsonLines(labels, func(_ int, b []byte) error {
		g, err := strconv.Atoi(string(b))
		if err != nil {
			return err
		}
		if i >= len(t.Items) {
			return fmt.Errorf("more labels than the %d questions", len(t.Items))
		}
		if err := checkGold(g, 2); err != nil {
			return err
		}
		t.Items[i].Gold = g
		i++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if i != len(t.Items) {
		return nil, fmt.Errorf("%d labels for %d questions", i, len(t.Items))
	}
	return t, nil
}

// MMLUContext is the zero-shot MMLU prompt of lm-evaluation-harness's mmlu
// task (lm_eval/tasks/mmlu/default: description + doc_to_text).
func MMLUContext(subject, question string, choices [4]string) string {
	return "The following are multiple choice questions (with answers) about " +
		strings.ReplaceAll(subject, "_", " ") + ".\n\n" + pyStrip(question) +
		"\nA. " + choices[0] + "\nB. " + choices[1] + "\nC. " + choices[2] + "\nD. " + choices[3] + "\nAnswer:"
}

// ParseMMLUCSV parses one subject's CSV (header
// question,choice0,choice1,choice2,choice3,answer; answer 0-3) into items
// with MMLUContext prompts and continuations " A" … " D".
func ParseMMLUCSV(r io.Reader, subject string) ([]Item, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 6
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	want := []string{"question", "choice0", "choice1", "choice2", "choice3", "answer"}
	for i, h := range head {
		if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) != want[i] {
			return nil, fmt.Errorf("header %v, want %v", head, want)
		}
	}
	var items []Item
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			return nil, err
		}
		g, err := strconv.Atoi(strings.TrimSpace(rec[5]))
		if err != nil {
			return nil, fmt.Errorf("row %d: answer: %w", len(items)+1, err)
		}
		if err := checkGold(g, 4); err != nil {
			return nil, fmt.Errorf("row %d: %w", len(items)+1, err)
		}
		ctx := MMLUContext(subject, rec[0], [4]string{rec[1], rec[2], rec[3], rec[4]})
		items = append(items, Item{
			Contexts:      []string{ctx, ctx, ctx, ctx},
			Continuations: []string{" A", " B", " C", " D"},
			Choices:       []string{"A", "B", "C", "D"},
			Gold:          g,
			Subject:       subject,
		})
	}
}

// MMLUSubjects lists the subjects under dataDir/mmlu/test (files
// <subject>_test.csv), sorted.
func MMLUSubjects(dataDir string) ([]string, error) {
	dir := filepath.Join(dataDir, MMLUTestDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("eval: mmlu: %w", err)
	}
	var subs []string
	for _, e := range ents {
		if s, ok := strings.CutSuffix(e.Name(), "_test.csv"); ok && !e.IsDir() {
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("eval: mmlu: no *_test.csv files in %s", dir)
	}
	sort.Strings(subs)
	return subs, nil
}

func loadMMLU(dataDir string, limit int) (*Task, error) {
	subs, err := MMLUSubjects(dataDir)
	if err != nil {
		return nil, err
	}
	t := &Task{Name: "mmlu"}
	for _, s := range subs {
		path := filepath.Join(dataDir, MMLUTestDir, s+"_test.csv")
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		items, err := ParseMMLUCSV(f, s)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("eval: %s: %w", path, err)
		}
		if limit > 0 && len(items) > limit {
			items = items[:limit]
		}
		t.Items = append(t.Items, items...)
	}
	return t, nil
}

// pyStrip is Python's str.strip(): it removes leading and trailing
// characters for which str.isspace() is true.
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyIsSpace is Python's str.isspace() for one code point: Unicode White_Space
// plus the information separators U+001C–U+001F.
func pyIsSpace(r rune) bool {
	switch {
	case r >= 0x1c && r <= 0x1f:
		return true
	case r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) ||
		r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000:
		return true
	}
	return r == ' ' || (r >= '\t' && r <= '\r')
}
