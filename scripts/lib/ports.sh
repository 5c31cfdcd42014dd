# Port picking for the black-box scripts (sourced). Set USED_PORTS_FILE to
# a file first; set RTP_MIN to keep picks out of Tandem's RTP range
# (RTP_MIN to RTP_MIN + 199).
# A free local port: SIPp's "-p 0" means 5060, which other processes may hold.
# Ports handed out are remembered in a file (a $(...) subshell cannot
# update a variable), so two picks never collide before either is bound.
port_free() { # port: not handed out, not bound, not in Tandem's RTP range
  local q=$1
  grep -qx "$q" "$USED_PORTS_FILE" && return 1
  [ -n "${RTP_MIN:-}" ] && [ "$q" -ge "$RTP_MIN" ] && [ "$q" -le $((RTP_MIN + 199)) ] && return 1
  ! ss -Hln "sport = :$q" 2>/dev/null | grep -q .
}
# Picks stay in 20000-32499, below Linux's ephemeral range (32768-60999):
# an outgoing connection (curl, a browser, a webhook client) may take any
# ephemeral port between the check and the bind, and did (EADDRINUSE).
# A pick may run in a background job's subshell (`sipp ... -cp "$(freeport)" &`
# expands there), beside a pick in the main shell that inherited the same
# $RANDOM sequence: both drew one port, and the second SIPp to bind it
# failed with EADDRINUSE. The check and the append hold a lock.
locked() { # command...: runs it holding the lock of the used-ports file
  local fd rc
  exec {fd}>>"$USED_PORTS_FILE.lock"
  flock "$fd"
  "$@"
  rc=$?
  exec {fd}>&-
  return "$rc"
}
freeport() { locked pick_port; }
freemedia() { locked pick_media; }
freerange() { locked pick_range "$@"; }
pick_port() {
  local p
  while :; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12500))
    if port_free "$p"; then
      echo "$p" >>"$USED_PORTS_FILE"
      echo "$p"
      return
    fi
  done
}
# A media port for SIPp's -mp: SIPp binds it and the three above (RTCP,
# video RTP and RTCP), so all four must be free.
pick_media() {
  local p
  while :; do
    p=$(((20000 + (RANDOM * 32768 + RANDOM) % 12500) / 2 * 2))
    if port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)) && port_free $((p + 3)); then
      printf '%s\n' "$p" $((p + 1)) $((p + 2)) $((p + 3)) >>"$USED_PORTS_FILE"
      echo "$p"
      return
    fi
  done
}
# A range of N ports (even start) none of which was handed out or is bound:
# Tandem's RTP pool. Ports picked before it (the SIP port...) are outside.
pick_range() { # n
  local n=$1 p
  while :; do
    p=$(((20000 + (RANDOM * 32768 + RANDOM) % (12500 - n)) / 2 * 2))
    if awk -v lo="$p" -v hi="$((p + n - 1))" '$1 >= lo && $1 <= hi {f = 1} END {exit f}' "$USED_PORTS_FILE" &&
      ! ss -Hln 2>/dev/null | awk -v lo="$p" -v hi="$((p + n - 1))" \
        '{k = split($4, a, ":"); q = a[k] + 0; if (q >= lo && q <= hi) f = 1} END {exit !f}'; then
      seq "$p" $((p + n - 1)) >>"$USED_PORTS_FILE"
      echo "$p"
      return
    fi
  done
}
