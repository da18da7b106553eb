// Package scripts holds the shell scripts of CI and of README.md's test
// command (test.sh, get-model.sh, get-tokenizers.sh,
// get-flink-jobserver.sh) and no Go code; its test (scripts_test.go) runs
// ../.ci/run and test.sh with stand-ins for go, python3 and df.
package scripts
