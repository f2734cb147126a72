#!/usr/bin/env bash
# Build local stand-ins for the official python base images from Debian packages.
#
#   scripts/base-images.sh [-q] [VERSION...]   (default: 3.11; known: 3.9 3.11 3.13)
#
# -q: say nothing about images that are already there.
#
# Where no registry can be reached, `python:3.x` cannot be pulled. For each version this makes
#   imagebuilder/python:<V>          runtime: python3, ca-certificates, netbase, tzdata
#   imagebuilder/python-builder:<V>  the same tree plus python3-venv, python3-dev, build-essential
# Both come from ONE debootstrap of the Debian release that ships that Python: the builder is the
# runtime tree plus packages installed with apt inside a chroot. That is about twice as fast as a
# second debootstrap (its dependency resolver and per-package dpkg runs dominate), and it
# guarantees the two images carry the very same python3 build, which is what makes a venv created
# in the builder (symlinks to /usr/bin/python3) work when copied into the runtime image.
# Images that already exist are left alone; delete both tags of a version to rebuild them
# together.
#
# Environment: IMAGEBUILDER_DOCKER_CLI (docker), IMAGEBUILDER_DEBIAN_MIRROR
# (http://deb.debian.org/debian), TMPDIR. Needs root, debootstrap, debian-archive-keyring, wget.
set -euo pipefail

DOCKER=${IMAGEBUILDER_DOCKER_CLI:-docker}
MIRROR=${IMAGEBUILDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Releases leave deb.debian.org some time after their LTS ends; only then is the archive needed
# (its Release files are expired, hence the Check-Valid-Until override below).
ARCHIVE_MIRROR=http://archive.debian.org/debian
RUNTIME_PACKAGES=python3,ca-certificates,netbase,tzdata
BUILDER_PACKAGES=(python3-venv python3-dev build-essential)
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

suite_for() {
    case $1 in
        3.9) echo bullseye ;;
        3.11) echo bookworm ;;
        3.13) echo trixie ;;
        *) return 1 ;;
    esac
}

die() {
    echo "base-images: $*" >&2
    exit 1
}

have_image() {
    "$DOCKER" image inspect "$1" >/dev/null 2>&1
}

image_size() {
    "$DOCKER" image inspect -f '{{.Size}}' "$1" | awk '{ printf "%d MB", $1 / 1000 / 1000 }'
}

# Run a noisy command with its output in a log; show the end of the log only when it fails.
# It runs in the background in its own process group: bash defers traps while a foreground child
# runs, and debootstrap takes a minute; this way an interrupt stops the whole tree (dpkg, chroot)
# at once, before its directory is deleted.
logged() {
    local log=$1
    shift
    setsid "$@" >>"$log" 2>&1 &
    CHILD=$!
    if ! wait "$CHILD"; then
        CHILD=
        echo "base-images: failed: $*" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    CHILD=
}

mirror_for() {
    local suite=$1 candidate
    for candidate in "$MIRROR" "$ARCHIVE_MIRROR"; do
        if wget -q -T 15 -t 2 -O /dev/null "$candidate/dists/$suite/InRelease"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Turn a fresh debootstrap tree into something shaped like debian:<suite>-slim.
configure_tree() {
    local root=$1 suite=$2 mirror=$3
    echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
    if [[ $mirror == "$ARCHIVE_MIRROR" ]]; then
        echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99archive"
    fi
    # Same trims as the official slim images, kept in dpkg's config so packages installed later
    # (here for the builder, or by a user's Dockerfile) stay trimmed too.
    cat >"$root/etc/dpkg/dpkg.cfg.d/imagebuilder-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    # Image layers are throwaway: fsync after every unpacked file only slows builds down.
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/imagebuilder-unsafe-io"
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$root/usr/share/man" "$root/usr/share/groff" "$root/usr/share/info" \
        "$root/usr/share/lintian" "$root/usr/share/linda" "$root/usr/share/locale" \
        -mindepth 1 -delete 2>/dev/null || true
}

# Stream the tree into `docker import`, leaving out what is host-specific or only a cache:
# Docker supplies /dev, resolv.conf and hostname at run time, and apt lists are stale anyway.
import_tree() {
    local root=$1 tag=$2 suite=$3
    tar --numeric-owner -C "$root" -cf - \
        --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./run/* \
        --exclude=./tmp/* --exclude=./var/tmp/* \
        --exclude=./etc/resolv.conf --exclude=./etc/hostname \
        --exclude=./var/lib/apt/lists/* --exclude=./var/cache/apt/* \
        --exclude=./var/cache/debconf/*-old --exclude=./var/lib/dpkg/*-old \
        --exclude=./var/cache/ldconfig/aux-cache \
        --exclude=./var/log/*.log --exclude=./var/log/apt/* \
        . |
        "$DOCKER" import \
            --change "ENV PATH=$IMAGE_PATH" \
            --change 'ENV LANG=C.UTF-8' \
            --change "LABEL org.imagebuilder.debian-suite=$suite" \
            --change 'CMD ["python3"]' \
            --message "imagebuilder: debootstrap $suite" \
            - "$tag" >/dev/null
}

# An interrupted debootstrap must be stopped, and the mounts it leaves behind (/proc, /sys in the
# tree) removed, before the tree is deleted.
cleanup() {
    local mnt tries=0
    if [[ -n ${CHILD:-} ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || true
        while kill -0 -- "-$CHILD" 2>/dev/null && ((tries++ < 50)); do sleep 0.2; done
        kill -KILL -- "-$CHILD" 2>/dev/null || true
    fi
    [[ -n ${WORK:-} && -d $WORK ]] || return 0
    awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf --one-file-system "$WORK"
}

build_version() {
    local version=$1 suite mirror root log runtime builder started elapsed='' after=''
    suite=$(suite_for "$version")
    runtime="imagebuilder/python:$version"
    builder="imagebuilder/python-builder:$version"
    mirror=$(mirror_for "$suite") ||
        die "no Debian mirror serves $suite (tried $MIRROR, $ARCHIVE_MIRROR)"
    root="$WORK/$suite"
    log="$WORK/$suite.log"

    started=$SECONDS
    logged "$log" debootstrap --variant=minbase --include="$RUNTIME_PACKAGES" \
        "$suite" "$root" "$mirror"
    configure_tree "$root" "$suite" "$mirror"
    if ! have_image "$runtime"; then
        import_tree "$root" "$runtime" "$suite"
        elapsed=$((SECONDS - started))
        echo "$runtime: built in ${elapsed}s ($suite, $(image_size "$runtime"))"
    fi

    if ! have_image "$builder"; then
        # Timed from the end of the runtime image if this run made one, else from the debootstrap.
        if [[ -n $elapsed ]]; then
            started=$SECONDS
            after=" after the runtime tree"
        fi
        # The debootstrap lists are still in the tree, so no apt-get update: the builder gets
        # exactly the package versions the runtime image has. The env is reset so host locale
        # settings do not leak into maintainer scripts; a proxy is kept, as debootstrap used it.
        logged "$log" env -i PATH="$IMAGE_PATH" DEBIAN_FRONTEND=noninteractive LC_ALL=C \
            http_proxy="${http_proxy:-}" \
            chroot "$root" apt-get install -y -q --no-install-recommends "${BUILDER_PACKAGES[@]}"
        import_tree "$root" "$builder" "$suite"
        elapsed=$((SECONDS - started))
        echo "$builder: built in ${elapsed}s$after ($suite, $(image_size "$builder"))"
    fi
    rm -rf --one-file-system "$root"
}

main() {
    local quiet=0 missing=() todo=() version
    if [[ ${1:-} == -q ]]; then
        quiet=1
        shift
    fi
    "$DOCKER" info >/dev/null 2>&1 ||
        die "the Docker daemon does not answer '$DOCKER info' (see scripts/setup.sh docker)"
    # Decide what to build before checking build tools: a second run, or a user who is not root,
    # must not need them when every image is already there.
    for version in "${@:-3.11}"; do
        suite_for "$version" >/dev/null ||
            die "unknown Python version $version (known: 3.9 3.11 3.13)"
        if have_image "imagebuilder/python:$version" &&
            have_image "imagebuilder/python-builder:$version"; then
            ((quiet)) ||
                echo "imagebuilder/python:$version, imagebuilder/python-builder:$version: present"
        else
            todo+=("$version")
        fi
    done
    ((${#todo[@]})) || return 0

    [[ $(id -u) -eq 0 ]] ||
        die "building ${todo[*]} needs root (debootstrap, chroot): sudo $0 ${todo[*]}"
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v wget >/dev/null || missing+=(wget)
    [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
    if ((${#missing[@]})); then
        die "missing ${missing[*]}; install with:" \
            "apt-get install -y --no-install-recommends ${missing[*]}"
    fi

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/imagebuilder-base.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    for version in "${todo[@]}"; do
        build_version "$version"
    done
}

main "$@"
