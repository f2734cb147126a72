# The entrypoint of a test container (POSIX sh; the engine runs it with `/bin/sh -c`).
#
# Runs the user's command with a shell, then prints the JUnit report after a marker line so it can
# be read back from the output: the root file system is read-only and /tmp is a tmpfs that dies
# with the container, where `docker cp` cannot reach. Tests often write next to their code
# (instance folders, databases, coverage files), so the working directory is first copied to the
# tmpfs and the tests run in the copy; the image itself stays read-only.
# Once the command ends, whatever it left running (a fork bomb's children, a server) is killed, so
# the wrapper can fork again; then it reports, with builtins only, whether the process limit
# refused a fork (the pids cgroup's "max" event count, v2 or v1 layout) and whether /tmp is full.
#
# Environment: IMAGEBUILDER_TEST_COMMAND, IMAGEBUILDER_REPORT_MARKER, IMAGEBUILDER_WORK_DIR,
# IMAGEBUILDER_REPORT_DIR, IMAGEBUILDER_JUNIT_PATH (adapters/docker/runs.py names the paths).
mkdir -p "$IMAGEBUILDER_WORK_DIR" 2>/dev/null
source_dir=$(pwd)
if [ "$source_dir" != / ] && cp -R "$source_dir/." "$IMAGEBUILDER_WORK_DIR/" 2>/dev/null; then
    cd "$IMAGEBUILDER_WORK_DIR"
else
    echo "[imagebuilder] tests run in $source_dir, read-only (it could not be copied to /tmp)"
fi
eval "$IMAGEBUILDER_TEST_COMMAND"
status=$?
kill -KILL -1 2>/dev/null
pids_refused=0
for events in /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events; do
    if [ -r "$events" ]; then read -r _ pids_refused < "$events"; break; fi
done
tmp_full=0
mkdir -p "$IMAGEBUILDER_REPORT_DIR" 2>/dev/null
{ printf x > "$IMAGEBUILDER_REPORT_DIR/.space"; } 2>/dev/null || tmp_full=1
printf '%s limits pids_refused=%s tmp_full=%s\n' "$IMAGEBUILDER_REPORT_MARKER" \
    "$pids_refused" "$tmp_full"
if [ -s "$IMAGEBUILDER_JUNIT_PATH" ]; then
    printf '%s report\n' "$IMAGEBUILDER_REPORT_MARKER"; cat "$IMAGEBUILDER_JUNIT_PATH"; printf '\n'
fi
exit $status
