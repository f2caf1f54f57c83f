#!/bin/sh
# The quickstart's commands, exactly as docs/quickstart.rst shows them (it
# includes this file piece by piece); libs/shared/tests/test_quickstart.py runs
# it against `make run`.
# Run it yourself in a second terminal once `make run` says Tecken is running.
set -eu
: "${SYMBOLS_URL:=http://localhost:3000}" "${ELIOT_URL:=http://localhost:8050}" "${COLLECTOR_URL:=http://localhost:8000}"

# [account]
./bin/tecken-symbols-admin superuser you@example.com
./bin/tecken-symbols-admin create-token you@example.com --notes "quickstart" > token.txt
# [/account]

# [symbols]
mkdir -p symbols/hello.pdb/0123456789ABCDEF0123456789ABCDEF1
cat > symbols/hello.pdb/0123456789ABCDEF0123456789ABCDEF1/hello.sym <<'SYM'
MODULE windows x86_64 0123456789ABCDEF0123456789ABCDEF1 hello.pdb
FILE 0 c:/src/hello.cpp
FUNC 1000 30 0 say_hello(char const*)
1000 10 12 0
1010 20 13 0
SYM
# [/symbols]

# [upload]
TECKEN_AUTH_TOKEN=$(cat token.txt) ./bin/tecken-upload-symbols --url "$SYMBOLS_URL" symbols/
# [/upload]

# [download]
curl -sS -L --compressed "$SYMBOLS_URL/hello.pdb/0123456789ABCDEF0123456789ABCDEF1/hello.sym" | head -3
# [/download]

# [symbolicate]
curl -sS -X POST "$ELIOT_URL/symbolicate/v5" -H 'Content-Type: application/json' -d '{
  "jobs": [{"memoryMap": [["hello.pdb", "0123456789ABCDEF0123456789ABCDEF1"]],
            "stacks": [[[0, 4116]]]}]}'
echo
# [/symbolicate]

# [crash]
echo '{"ProductName": "Hello", "Version": "1.0", "ReleaseChannel": "release"}' > annotations.json
printf 'MDMP' > crash.dmp
./bin/tecken-submit-crash "$COLLECTOR_URL" --annotations annotations.json --dump crash.dmp | tee crashid.txt
# [/crash]

# [readback]
CRASH_ID=$(cut -d- -f2- crashid.txt)
cat "${COLLECTOR_CRASHSTORAGE_ROOT:-var/collector/crashes}"/*/raw_crash/"$CRASH_ID".json
echo
# [/readback]
