#!/bin/sh
# Validate the desktop integration files (CI runs this; needs desktop-file-utils and appstream).
set -eu
here=$(dirname "$0")
desktop-file-validate "$here/io.github.vmlog.Vmlog.desktop"
appstreamcli validate --no-net --explain "$here/io.github.vmlog.Vmlog.metainfo.xml"
xmllint --noout "$here/icons/io.github.vmlog.Vmlog.svg" 2>/dev/null || python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$here/icons/io.github.vmlog.Vmlog.svg"
echo "packaging files are valid"
