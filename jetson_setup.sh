#!/usr/bin/env bash
# Install fume-edge on an NVIDIA Jetson as a running service: from a flashed Jetson to alerts on the broker.
#
#   sudo ./jetson_setup.sh [--dry-run] [--force] [--model M.onnx] [[--station ID] --co2-camera ID --ch4-camera ID]...
#                          [--mqtt URL | --mqtt-bridge URL] [--device-id ID] [--calib DIR] [--pycuda] [--no-service]
#                          [--root DIR] [--ask]
#
# Steps (each checks first and only acts when something is missing or different, so a second run changes nothing
# and says so): detect JetPack from /etc/nv_tegra_release (facts in fume_edge/service/jetpack.tsv); apt packages;
# the service user; a venv with --system-site-packages (JetPack's TensorRT and GStreamer OpenCV stay visible; numpy
# pinned to what that OpenCV was built with; cuda-python of the device's CUDA major) and its checks; udev names
# /dev/fume-co2 and /dev/fume-ch4; /etc/fume-edge/run.yaml; the systemd unit; the device's own TensorRT engine
# (INT8, else FP16) checked with `fume-edge bench --check`; the service enabled and started.
#
# Camera IDs: /dev/videoN (its serial, else its USB port, becomes the udev match), serial:SERIAL, path:ID_PATH,
# or a source fume-edge opens directly (csi://N, rtsp://..., gst:PIPELINE), which needs no udev rule.
# Several stations (camera pairs) on one device: repeat the pair, each after `--station ID` (else numbered 1, 2, ...);
# their links are /dev/fume-co2-ID and /dev/fume-ch4-ID, and run.yaml lists them under `stations:`.
# --ask asks for the stations instead (the default on a terminal without camera options): each station's id and
# its two cameras, then shows them before anything changes; answers may come piped on stdin, one a line.
# --root DIR installs into the filesystem under DIR (an image being prepared, or tests): files are written there,
# commands that would change the running system are listed, not run; the service is enabled only once its engine
# is there (built on the device: run the script there). --dry-run writes and runs nothing.
# --force installs on a machine that is not a Jetson (no /etc/nv_tegra_release), assuming JetPack 6.2's versions.
# --mqtt-bridge URL: a local Mosquitto for fume-edge, bridged to the central broker URL (QoS 1, persistent
# session; login from the URL or /etc/fume-edge/mqtt.credentials); its config is shown in a dry run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root=/
dry_run=0
force=0
model=""
station_ids=()  # per station (camera pair): its id ("" until numbered), CO2 camera and CH4 camera
co2_cameras=()
ch4_cameras=()
mqtt_url=""
bridge_url=""
device_id=""
calib=""
pycuda=0
service=1
ask=0
user=fume-edge
venv=/opt/fume-edge/venv
state=/var/lib/fume-edge
changes=0

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'jetson_setup: %s\n' "$*" >&2; exit 1; }
# shell_join ARG...: the command as one line a shell reads back as the same words (quoted only where needed).
shell_join() {
  local arg line=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then line+=" $arg"
    else line+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${line# }"
}

# new_station ID: the next camera pair starts here.
new_station() { station_ids+=("$1"); co2_cameras+=(""); ch4_cameras+=(""); }
# camera GAS ID: the camera of the current station, or of a new one when the current has that gas already.
camera() {
  local last=$((${#station_ids[@]} - 1)) have
  if [ "$last" -ge 0 ]; then
    have="${co2_cameras[$last]}"; [ "$1" = co2 ] || have="${ch4_cameras[$last]}"
  fi
  if [ "$last" -lt 0 ] || [ -n "$have" ]; then new_station ""; last=$((last + 1)); fi
  if [ "$1" = co2 ]; then co2_cameras[last]="$2"; else ch4_cameras[last]="$2"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    --model) model="${2:?--model needs a file}"; shift ;;
    --station) new_station "${2:?--station needs an ID}"; shift ;;
    --co2-camera) camera co2 "${2:?--co2-camera needs an ID}"; shift ;;
    --ch4-camera) camera ch4 "${2:?--ch4-camera needs an ID}"; shift ;;
    --mqtt) mqtt_url="${2:?--mqtt needs a URL}"; shift ;;
    --mqtt-bridge) bridge_url="${2:?--mqtt-bridge needs a URL}"; mqtt_url="$bridge_url"; shift ;;
    --device-id) device_id="${2:?--device-id needs an ID}"; shift ;;
    --calib) calib="${2:?--calib needs a folder}"; shift ;;
    --pycuda) pycuda=1 ;;
    --no-service) service=0 ;;
    --ask) ask=1 ;;
    --root)
      [ -d "${2:?--root needs a folder}" ] || die "--root $2: no such folder (create it first: mkdir -p $(shell_join "$2"))"
      root="$(cd "$2" && pwd)"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$root" = / ] || root="${root%/}/"
live=0  # 1: commands change this machine
if [ "$dry_run" = 0 ] && [ "$root" = / ]; then live=1; fi
if [ "${#station_ids[@]}" = 0 ] && [ "$root" = / ] && [ -t 0 ]; then ask=1; fi
[ "$ask" = 0 ] || [ "${#station_ids[@]}" = 0 ] \
  || die "--ask asks for the cameras: give them either as answers or as options (--co2-camera, --ch4-camera), not both"

# on PATH: the file at target path PATH under --root
on() { printf '%s%s' "$root" "${1#/}"; }

# run CMD...: a command that changes the system; listed in a dry run or under --root.
run() {
  if [ "$dry_run" = 1 ]; then say "  would run: $(shell_join "$@")"
  elif [ "$root" != / ]; then say "  not run (--root): $(shell_join "$@")"
  else say "  run: $(shell_join "$@")"; "$@" || return; changes=$((changes + 1))
  fi
}

# put_file PATH MODE < CONTENT: write the file when its content or mode differs. Returns 1 when unchanged.
put_file() {
  local dest content
  dest="$(on "$1")"
  content="$(cat)"
  if [ -f "$dest" ] && [ "$(cat "$dest")" = "$content" ] && [ "$(stat -c %a "$dest")" = "$2" ]; then
    say "  unchanged: $1"; return 1
  fi
  if [ "$dry_run" = 1 ]; then say "  would write: $1 (mode $2)"; return 0; fi
  mkdir -p "$(dirname "$dest")"
  printf '%s\n' "$content" > "$dest.tmp"
  chmod "$2" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  say "  wrote: $1"
  changes=$((changes + 1))
}

# render TEMPLATE KEY=VALUE...: a template from fume_edge/service with @KEY@ replaced.
render() {
  local text pair
  text="$(cat "$here/fume_edge/service/$1")"; shift
  for pair in "$@"; do text="${text//@${pair%%=*}@/${pair#*=}}"; done
  printf '%s\n' "$text"
}

# station_problem ID I: why ID cannot name station I (nothing when it can): run.yaml's topic-safe id, each its own.
station_problem() {
  local j
  if ! [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
    say "not a valid id; use 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"; return
  fi
  for ((j = 0; j < $2; j++)); do
    if [ "${station_ids[$j]:-$((j + 1))}" = "$1" ]; then say "given twice; give each station its own id"; return; fi
  done
}

# suffix_of I: what station I adds to its links' names (/dev/fume-co2-ID); nothing in the one-station layout.
suffix_of() { if [ "$several" = 1 ]; then printf -- '-%s' "${station_ids[$1]}"; fi; }

# ask PROMPT: the next line of stdin into $answer (echoed when piped, so the output reads as the dialogue).
ask() {
  printf '  %s' "$1"
  read -r answer || [ -n "$answer" ] || { say; die "the input ended before the answer to \"${1%: }\" (answer each question on its own line, or see --help)"; }
  [ -t 0 ] || say "$answer"
}

# udev_match GAS ID: prints the udev match keys for a camera ID, or nothing for sources opened directly.
udev_match() {
  local id="$2" props serial path
  case "$id" in
    serial:*) printf 'ENV{ID_SERIAL_SHORT}=="%s"' "${id#serial:}" ;;
    path:*) printf 'ENV{ID_PATH}=="%s"' "${id#path:}" ;;
    /dev/video*)
      [ "$root" = / ] || die "--$1-camera $id: a device node needs the running system; under --root give serial:SERIAL or path:ID_PATH"
      if [ ! -e "$id" ] || ! props="$(udevadm info --query=property --name="$id" 2>/dev/null)"; then
        die "--$1-camera $id: no such camera (v4l2-ctl --list-devices)"
      fi
      serial="$(printf '%s\n' "$props" | sed -n 's/^ID_SERIAL_SHORT=//p')"
      path="$(printf '%s\n' "$props" | sed -n 's/^ID_PATH=//p')"
      if [ -n "$serial" ]; then printf 'ENV{ID_SERIAL_SHORT}=="%s"' "$serial"
      elif [ -n "$path" ]; then printf 'ENV{ID_PATH}=="%s"' "$path"
      else die "--$1-camera $id: udev knows neither its serial nor its port; give path:ID_PATH"
      fi ;;
    ""|csi://*|rtsp://*|rtsps://*|http://*|https://*|gst:*) ;;
    *) die "--$1-camera $id: expected /dev/videoN, serial:SERIAL, path:ID_PATH, csi://N, rtsp://... or gst:PIPELINE" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------------------
step "1/9 Jetson and JetPack"
facts="$(python3 "$here/fume_edge/service/jetson.py" facts --root "$root")"
L4T="" JETPACK="" TENSORRT="" CUDA="" PYTHON="" NUMPY="" CUDA_PYTHON="" SUPPORT=""
eval "$facts"
if [ -z "$L4T" ]; then
  [ "$force" = 1 ] || die "not a Jetson ($(on /etc/nv_tegra_release) is missing). On a desktop: pip install -e '.[cpu]'; --force installs anyway"
  say "  not a Jetson; --force: continuing with the JetPack 6.2 values"
  eval "$(python3 "$here/fume_edge/service/jetson.py" facts --assume 36.4.3)"
  say "  L4T $L4T (assumed): JetPack $JETPACK, TensorRT $TENSORRT, CUDA $CUDA, Python $PYTHON"
elif [ -z "$JETPACK" ]; then
  known="$(grep -v '^#' "$here/fume_edge/service/jetpack.tsv" | cut -f2 | tail -n +2 | sort -u | tr '\n' ' ')"
  die "L4T $L4T is a JetPack this script does not know (known: $known). Add its row to fume_edge/service/jetpack.tsv from NVIDIA's release notes"
fi
if [ "$SUPPORT" = refuse ]; then
  die "JetPack $JETPACK (L4T $L4T) ships Python $PYTHON, below fume-edge's floor (3.10), with TensorRT $TENSORRT and CUDA $CUDA.
  Upgrade path: Orin modules: flash JetPack 6.2 (SDK Manager, or the Orin Nano SD card image); JetPack 5 to 6 needs a
  reflash, there is no apt upgrade. Xavier modules stop at JetPack 5 and cannot run fume-edge. Then rerun this script."
fi
if [ "$force" = 0 ] || [ -f "$(on /etc/nv_tegra_release)" ]; then
  say "  L4T $L4T: JetPack $JETPACK, TensorRT $TENSORRT, CUDA $CUDA, Python $PYTHON"
  python3 "$here/fume_edge/service/jetson.py" conditions --root "$root" | sed 's/^/  /'
fi
if [ "$live" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "run it as root: sudo $0 (with the same options)"
  found="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [ "$found" = "$PYTHON" ] || say "  warning: python3 is $found, JetPack $JETPACK ships $PYTHON"
fi

# ---------------------------------------------------------------------------------------------------------------
if [ "$ask" = 1 ]; then
  step "stations (camera pairs): asked before anything changes"
  if [ "$root" != / ]; then :
  elif command -v v4l2-ctl > /dev/null; then
    say "  cameras this Jetson sees (v4l2-ctl --list-devices):"
    v4l2-ctl --list-devices 2>&1 | sed 's/^/    /' || true
  else
    say "  (v4l2-ctl is not installed, so no list of cameras: apt-get install v4l-utils)"
  fi
  say "  cameras: /dev/videoN, serial:SERIAL, path:ID_PATH, csi://N, rtsp://... or gst:PIPELINE; empty: none"
  answer=y
  while [[ "$answer" = [yY]* ]]; do
    n=$((${#station_ids[@]} + 1))
    while ask "station $n id (empty: $n): "; problem="$(station_problem "${answer:-$n}" $((n - 1)))"; [ -n "$problem" ]; do
      say "  ${answer}: $problem"
    done
    new_station "$answer"
    for gas in co2 ch4; do
      while ask "station ${station_ids[$((n - 1))]:-$n} ${gas^^} camera: "; [ -n "$answer" ] && ! problem="$(udev_match "$gas" "$answer" 2>&1 > /dev/null)"; do
        say "  ${problem#jetson_setup: }"
      done
      [ -z "$answer" ] || camera "$gas" "$answer"
    done
    ask "another station? [y/N]: "
  done
fi
# One pair without --station (or an unnamed one when asked): the one-station layout (/dev/fume-co2, run.yaml
# `sources:`); else `stations:`.
several=0
if [ "${#station_ids[@]}" -gt 1 ] || [ -n "${station_ids[0]:-}" ]; then several=1; fi
for i in "${!station_ids[@]}"; do
  [ -n "${station_ids[$i]}" ] || station_ids[i]="$((i + 1))"
  problem="$(station_problem "${station_ids[$i]}" "$i")"
  [ -z "$problem" ] || die "--station ${station_ids[$i]}: $problem"
done
if [ "$ask" = 1 ]; then
  if [ "$several" = 0 ]; then say "  to install (one station, run.yaml sources:):"; else say "  to install (run.yaml stations:):"; fi
  for i in "${!station_ids[@]}"; do
    suffix="$(suffix_of "$i")"; line="the station"; sep=":"
    [ "$several" = 0 ] || line="station ${station_ids[$i]}"
    for gas in co2 ch4; do
      id="${co2_cameras[$i]}"; [ "$gas" = co2 ] || id="${ch4_cameras[$i]}"
      if [ -z "$id" ]; then line+="$sep ${gas^^} none (run.yaml keeps /dev/fume-$gas$suffix)"
      elif [ -n "$(udev_match "$gas" "$id")" ]; then line+="$sep ${gas^^} $id -> /dev/fume-$gas$suffix"
      else line+="$sep ${gas^^} $id (opened directly)"
      fi
      sep=","
    done
    say "    $line"
  done
  if [ "$dry_run" = 0 ]; then
    ask "install? [Y/n]: "
    if [[ "$answer" = [nN]* ]]; then say "jetson_setup: stopped before any change."; exit 0; fi
  fi
fi

# ---------------------------------------------------------------------------------------------------------------
step "2/9 apt packages"
packages=(python3-venv python3-pip python3-libnvinfer nvidia-opencv v4l-utils)
[ "$pycuda" = 0 ] || packages+=(python3-dev nvidia-cuda-dev)  # pycuda builds with nvcc and the CUDA headers
[ -z "$bridge_url" ] || packages+=(mosquitto)
missing=()
for package in "${packages[@]}"; do
  if dpkg-query --admindir="$(on /var/lib/dpkg)" -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    say "  installed: $package"
  else
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# ---------------------------------------------------------------------------------------------------------------
step "3/9 service user $user (groups: video)"
if grep -q "^$user:" "$(on /etc/passwd)" 2>/dev/null; then
  say "  exists: $user"
else
  run useradd --system --user-group --home-dir "$state" --no-create-home --shell /usr/sbin/nologin --groups video "$user"
fi
if grep -q "^$user:" "$(on /etc/passwd)" 2>/dev/null && ! grep -Eq "^video:[^:]*:[^:]*:(.*,)?$user(,|$)" "$(on /etc/group)"; then
  run usermod --append --groups video "$user"
fi

# ---------------------------------------------------------------------------------------------------------------
step "4/9 venv $venv (--system-site-packages: JetPack's TensorRT and OpenCV)"
# pyproject's runtime dependencies and the mqtt, web and trt extras, without opencv-python-headless: pip's OpenCV has no
# GStreamer and would shadow JetPack's. numpy stays below 2 for JetPack's OpenCV; onnxruntime runs .onnx models.
requirements=("$NUMPY" onnxruntime "typer>=0.12" "rich>=13" "pyyaml>=6" "paho-mqtt>=2.0" "starlette>=0.37" "uvicorn>=0.29" "prometheus-client>=0.20" "pydantic>=2.5" "onnx>=1.15" "$CUDA_PYTHON")
pip=("$venv/bin/pip")
if [ "$pycuda" = 1 ]; then requirements+=(pycuda); pip=(env "PATH=/usr/local/cuda/bin:$PATH" "$venv/bin/pip"); fi
source_id="$(cd "$here" && find fume_edge pyproject.toml -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
wanted="fume-edge $source_id; ${requirements[*]}"
stamp="$venv/.fume-edge-install"
if [ -x "$(on "$venv/bin/python")" ]; then
  say "  exists: $venv"
else
  run python3 -m venv --system-site-packages "$venv"
fi
if [ -f "$(on "$stamp")" ] && [ "$(cat "$(on "$stamp")")" = "$wanted" ]; then
  say "  up to date: fume-edge $source_id with ${requirements[*]}"
else
  run "${pip[@]}" install --upgrade "${requirements[@]}"
  run "$venv/bin/pip" install --no-deps --force-reinstall "$here"
  if [ "$live" = 1 ]; then printf '%s\n' "$wanted" > "$stamp"; fi
fi
checks=(
  "import tensorrt; print('TensorRT', tensorrt.__version__, '(JetPack: $TENSORRT)')"
  "import cv2; print('OpenCV', cv2.__version__, 'GStreamer', 'yes' if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER) else 'NO: CSI cameras and hardware RTSP decoding will not open (docs/troubleshooting.md)')"
  "import numpy; print('numpy', numpy.__version__); assert numpy.__version__ < '2', 'numpy 2 shadows JetPack numpy 1.x (docs/troubleshooting.md)'"
)
for check in "${checks[@]}"; do
  if [ "$live" = 1 ]; then
    "$venv/bin/python" -c "$check" 2>&1 | sed 's/^/  /' || say "  warning: check failed: $check"
  else
    say "  would check: $(shell_join "$venv/bin/python" -c "${check%%;*}")"
  fi
done

# ---------------------------------------------------------------------------------------------------------------
step "5/9 camera names /dev/fume-co2 and /dev/fume-ch4 (several stations: /dev/fume-co2-ID, ...)"
if [ "${#station_ids[@]}" = 0 ]; then
  say "  no --co2-camera/--ch4-camera: cameras as they are (list them: v4l2-ctl --list-devices)"
fi
[ "${#station_ids[@]}" -gt 0 ] || new_station 1  # no cameras given: the one station's default links
rules="$(render 99-fume-edge-cameras.rules.in)"
sources=()  # per station: its CO2 source, its CH4 source
matches=()
for i in "${!station_ids[@]}"; do
  suffix="$(suffix_of "$i")"
  for gas in co2 ch4; do
    id="${co2_cameras[$i]}"; [ "$gas" = co2 ] || id="${ch4_cameras[$i]}"
    match="$(udev_match "$gas" "$id")"
    if [ -n "$match" ]; then
      for seen in "${matches[@]}"; do
        [ "$seen" != "$match" ] || die "two cameras match $match (identical serials); give each its USB port: path:ID_PATH (udevadm info --query=property --name=/dev/videoN)"
      done
      matches+=("$match")
      rules+=$'\n'"SUBSYSTEM==\"video4linux\", $match, ATTR{index}==\"0\", SYMLINK+=\"fume-$gas$suffix\", GROUP=\"video\", MODE=\"0660\""
      say "  $gas$suffix: $id -> /dev/fume-$gas$suffix ($match)"
      sources+=("/dev/fume-$gas$suffix")
    elif [ -n "$id" ]; then
      say "  $gas$suffix: $id (opened directly, no udev rule)"
      sources+=("$id")
    else
      sources+=("/dev/fume-$gas$suffix")
    fi
  done
done
if [ "${#matches[@]}" -gt 0 ] && put_file /etc/udev/rules.d/99-fume-edge-cameras.rules 644 <<< "$rules"; then
  run udevadm control --reload
  run udevadm trigger --subsystem-match=video4linux --action=change
fi

# ---------------------------------------------------------------------------------------------------------------
step "6/9 configuration /etc/fume-edge"
engine="$state/engines/$(basename "${model:-fume_default.onnx}" .onnx).engine"
private_tmp=yes
case "${sources[*]}" in *csi://*) private_tmp=no ;; esac
# quote VALUE: a YAML scalar (a JSON string; null when empty).
quote() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1] or None))' "$1"; }
mqtt_login=""  # user:password given in --mqtt goes to the root-only credentials file, never into run.yaml
case "$mqtt_url" in
  *://*@*) mqtt_login="${mqtt_url#*://}"; mqtt_login="${mqtt_login%%@*}"; mqtt_url="${mqtt_url%%://*}://${mqtt_url#*@}" ;;
esac
central_url="$mqtt_url"  # --mqtt-bridge: fume-edge publishes to the local broker, which bridges to this one
[ -z "$bridge_url" ] || mqtt_url="$(PYTHONPATH="$here" python3 -m fume_edge.fleet.bridge --central "$central_url" --local-url)"
if [ -f "$(on /etc/fume-edge/run.yaml)" ]; then
  say "  kept: /etc/fume-edge/run.yaml (yours; delete it to have it written again)"
else
  if [ "$several" = 0 ]; then
    cameras="sources:"$'\n'"  co2: {source: $(quote "${sources[0]}")}"$'\n'"  ch4: {source: $(quote "${sources[1]}")}"
  else
    cameras="stations:  # one camera pair each; per-station alert overrides: docs/run-yaml.md"
    for i in "${!station_ids[@]}"; do
      cameras+=$'\n'"  - {id: $(quote "${station_ids[$i]}"), co2: $(quote "${sources[$((2 * i))]}"), ch4: $(quote "${sources[$((2 * i + 1))]}")}"
    done
  fi
  config="$(render run.yaml.in "DEVICE_ID=$(quote "$device_id")" "MODEL=$engine" "CAMERAS=$cameras" \
    "MQTT=$(quote "$mqtt_url")")"
  if put_file /etc/fume-edge/run.yaml 644 <<< "$config" && [ "$dry_run" = 1 ]; then say "  | ${config//$'\n'/$'\n'  | }"; fi
fi
if [ -n "$mqtt_login" ]; then
  put_file /etc/fume-edge/mqtt.credentials 600 <<< "$mqtt_login" || true
elif [ -f "$(on /etc/fume-edge/mqtt.credentials)" ]; then
  say "  kept: /etc/fume-edge/mqtt.credentials (root-only; user:password of the broker, empty: no login)"
else
  put_file /etc/fume-edge/mqtt.credentials 600 < /dev/null || true
fi
if [ -n "$bridge_url" ]; then  # the broker password is in it: root-only, like the credentials file
  login_file="$(on /etc/fume-edge/mqtt.credentials)"  # the login given now (a dry run wrote nothing), else the file's
  bridge="$({ if [ -n "$mqtt_login" ]; then printf '%s\n' "$mqtt_login"; elif [ -f "$login_file" ]; then cat "$login_file"; fi; } \
    | PYTHONPATH="$here" python3 -m fume_edge.fleet.bridge --central "$central_url" \
      --device-id "${device_id:-$(hostname)}" --credentials /dev/stdin)" || die "--mqtt-bridge $central_url: see above"
  if [ "$dry_run" = 1 ] || [ "$root" != / ]; then sed 's/^remote_password .*/remote_password (hidden)/; s/^/  | /' <<< "$bridge"; fi
  if put_file /etc/mosquitto/conf.d/fume-edge-bridge.conf 600 <<< "$bridge"; then run systemctl restart mosquitto; fi
fi

# ---------------------------------------------------------------------------------------------------------------
step "7/9 systemd unit fume-edge.service"
put_file /usr/share/doc/fume-edge/README.md 644 < "$here/README.md" || true  # the unit's Documentation=
for page in "$here"/docs/*.md; do  # the pages the README links to, so its links work where it is installed
  put_file "/usr/share/doc/fume-edge/docs/${page##*/}" 644 < "$page" || true
done
unit="$(render fume-edge.service.in "VENV=$venv" "USER=$user" "PRIVATE_TMP=$private_tmp")"
if put_file /etc/systemd/system/fume-edge.service 644 <<< "$unit"; then
  run systemctl daemon-reload
fi

# ---------------------------------------------------------------------------------------------------------------
step "8/9 TensorRT engine $engine (built on this device: engines are specific to the TensorRT version and GPU)"
model_file="${model:-$here/fume_edge/assets/fume_default.onnx}"
[ -f "$model_file" ] || die "--model $model_file: no such file"
model_sha="$(sha256sum "$model_file" | cut -d' ' -f1)"
engine_stamp="$engine.source-sha256"
calib_args=()
[ -z "$calib" ] || calib_args=(--calib "$calib")
if [ -f "$(on "$engine")" ] && [ -f "$(on "$engine_stamp")" ] && [ "$(cat "$(on "$engine_stamp")")" = "$model_sha" ]; then
  say "  up to date: $engine (from $model_file)"
elif [ "$live" = 1 ]; then
  mkdir -p "$state/engines"
  if ! run "$venv/bin/fume-edge" build-engine "$model_file" --int8 "${calib_args[@]}" -o "$engine"; then
    say "  INT8 refused (accuracy report above, or no calibration data): building FP16"
    run "$venv/bin/fume-edge" build-engine "$model_file" --fp16 -o "$engine"
  fi
  printf '%s\n' "$model_sha" > "$engine_stamp"
  chown -R "$user:$user" "$state"
  run "$venv/bin/fume-edge" bench "$engine" --check \
    || say "  warning: below the target FPS; check the power mode (sudo nvpmodel -m 0 && sudo jetson_clocks)"
else
  run "$venv/bin/fume-edge" build-engine "$model_file" --int8 "${calib_args[@]}" -o "$engine"
  say "  (if INT8 is refused: $(shell_join "$venv/bin/fume-edge" build-engine "$model_file" --fp16 -o "$engine"))"
  run "$venv/bin/fume-edge" bench "$engine" --check
fi

# ---------------------------------------------------------------------------------------------------------------
step "9/9 service"
wants=/etc/systemd/system/multi-user.target.wants/fume-edge.service
if [ "$service" = 0 ]; then
  say "  --no-service: not enabled. Try it by hand: $(shell_join sudo -u "$user" "$venv/bin/fume-edge" run --config /etc/fume-edge/run.yaml)"
elif [ "$live" = 0 ] && [ "$dry_run" = 0 ] && [ ! -f "$(on "$engine")" ]; then
  say "  not enabled: its engine $engine is built on the device; there, run this script again to build it and start the service"
elif [ ! -L "$(on "$wants")" ]; then
  if [ "$live" = 1 ] || [ "$dry_run" = 1 ]; then
    run systemctl enable --now fume-edge.service
  else  # under --root: what `systemctl enable` does, without a running systemd
    mkdir -p "$(dirname "$(on "$wants")")"
    ln -s /etc/systemd/system/fume-edge.service "$(on "$wants")"
    say "  enabled: $wants"
    changes=$((changes + 1))
  fi
else
  say "  enabled: fume-edge.service"
  if [ "$changes" -gt 0 ]; then run systemctl restart fume-edge.service; fi
fi
if [ "$service" = 1 ] && [ "$live" = 1 ]; then
  sleep 5
  if systemctl is-active --quiet fume-edge.service; then
    say "  running: fume-edge.service ($(systemctl show -P StatusText fume-edge.service))"
  else
    say "  NOT running: journalctl -u fume-edge -n 50 --no-pager (docs/troubleshooting.md)"
  fi
fi

echo
if [ "$dry_run" = 1 ]; then
  say "jetson_setup: dry run, nothing changed."
elif [ "$changes" = 0 ]; then
  say "jetson_setup: nothing to do, everything was already in place."
elif [ "$live" = 0 ]; then
  say "jetson_setup: done ($changes changes under $root). Next, on the device: sudo ./jetson_setup.sh (same options) builds the engine and starts the service."
else
  say "jetson_setup: done ($changes changes). Next: journalctl -u fume-edge -f; alerts: $(shell_join sudo -u "$user" "$venv/bin/fume-edge" alerts --db "$state/alerts.db")"
fi
