#!/bin/sh
# Check the Vagrantfile without a hypervisor: the file itself, then each provider block it
# declares against that provider's own config class.
#
#   sh ci/vagrant-validate.sh
#
# `vagrant validate --ignore-provider` checks everything but the provider blocks (it says
# "Ignoring provider config"). A provider block is validated only when that provider is the
# default and "usable", so each one is made usable here without a VM:
#   virtualbox  vagrant probes usability with `VBoxManage --version` only; a stub on PATH
#               answers that one question and fails any other call, so a validation that
#               needed the real VirtualBox would fail loudly rather than pass.
#   libvirt     the vagrant-libvirt plugin (Debian package vagrant-libvirt) validates its
#               block without a libvirtd connection.
# A provider block this script does not know is an error, so a new one cannot go unchecked.
set -eu

cd "$(dirname "$0")/.."
export VAGRANT_CHECKPOINT_DISABLE=1

vagrant validate --ignore-provider

stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT INT TERM
cat >"$stub/VBoxManage" <<'SH'
#!/bin/sh
if [ "$*" = --version ]; then
    echo 7.0.14r161095
    exit 0
fi
echo "ci/vagrant-validate.sh: VBoxManage stub called with '$*'" >&2
exit 1
SH
chmod +x "$stub/VBoxManage"

providers=$(sed -n 's/^ *config\.vm\.provider *"\([a-z_]*\)".*/\1/p' Vagrantfile | sort -u)
[ -n "$providers" ] || { echo "ci/vagrant-validate.sh: no provider blocks found" >&2; exit 1; }
for provider in $providers; do
    echo "-- provider block: $provider"
    case $provider in
        virtualbox) PATH="$stub:$PATH" VAGRANT_DEFAULT_PROVIDER=virtualbox vagrant validate ;;
        libvirt) VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate ;;
        *)
            echo "ci/vagrant-validate.sh: no way to check the '$provider' block here; add one" >&2
            exit 1
            ;;
    esac
done
