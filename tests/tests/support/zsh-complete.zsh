# zsh -f zsh-complete.zsh FPATH_DIR LINE: types LINE and a tab into an interactive zsh on a pty
# (tests/tests/docs.rs), with the completion files of FPATH_DIR; prints each match the
# completion hands to compadd, one a line. The markers are split in the typed definitions so
# the terminal's echo of them never matches; the read waits for the end marker, which the
# completion system prints after every completion.
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "PROMPT= RPROMPT= PS2="
zpty -w z "fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "zstyle ':completion:*' list-grouped false"
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __h; builtin compadd -A __h "$@"
  local m; for m in $__h; do print -r -- "<<M""ATCH>>$m<<""/>>"; done
  builtin compadd "$@"
}'
zpty -w z 'comppostfuncs=( __halite_test_done ); __halite_test_done() { print -r -- "<<E""ND>>" }'
zpty -w -n z "$2"$'\t'
local out
zpty -r z out '*<<END>>*'
zpty -d z
print -r -- "$out" | tr -d '\r' | grep -o '<<MATCH>>.*<</>>' | sed 's/^<<MATCH>>//; s/<<\/>>$//'
