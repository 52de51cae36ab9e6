# A small, nixpkgs-shaped package set for Nixyard's tests and quick start. NOT for real use.
#
# It is impure on purpose: nixpkgs and the binary cache cannot be reached where Nixyard is
# developed, so each package copies Debian's binaries, unpacked by ./prepare.sh into the
# git-ignored ./.prepared, and uses the host's /bin/sh, coreutils and patchelf to build. Every
# ELF file's interpreter and RUNPATH are rewritten to store paths, so Nix records a real
# reference graph and the programs run in a container that holds only their closure.
#
# x86_64-linux is built from Debian's amd64 binaries, aarch64-linux from its arm64 ones; an
# x86_64 machine builds both (aarch64-linux with `extra-platforms = aarch64-linux`).
#
# Real deployments point Nixyard at nixpkgs instead; see docs/package-set.md.
{ system ? builtins.currentSystem, ... }:

let
  inherit (builtins) attrNames concatStringsSep elemAt head match;

  # A string, not a path: a path would be copied into the store at every evaluation. The
  # Debian versions in the derivations make up for what Nix cannot see through it.
  prepared =
    let dir = toString ./. + "/.prepared";
    in if match ".*[[:space:]].*" dir == null then dir
    else throw "examples/pkgs: the builders split their inputs on spaces; ${dir} has some";

  # Per Nix system: Debian's multiarch triplet and loader, the directory where prepare.sh unpacked
  # that architecture's packages, and how builder.sh checks the ELF files it installs.
  # aarch64-linux is built on x86_64 machines (Nix with `extra-platforms = aarch64-linux`), which
  # cannot run its programs, so they are checked statically. On any other system the derivations
  # evaluate, and builder.sh stops with a message.
  platforms = {
    x86_64-linux = {
      triplet = "x86_64-linux-gnu";
      loader = "ld-linux-x86-64.so.2";
      tree = prepared; # amd64
      check = "loader";
    };
    aarch64-linux = {
      triplet = "aarch64-linux-gnu";
      loader = "ld-linux-aarch64.so.1";
      tree = prepared + "/arm64";
      check = "static";
    };
  };
  platform = platforms.${system} or {
    triplet = "";
    loader = "";
    tree = prepared;
    check = "static";
  };

  listed = builtins.fromJSON (builtins.readFile ./debian.json);
  versionsFile = platform.tree + "/versions.json";
  versions =
    if !builtins.pathExists versionsFile then
      throw "examples/pkgs: ${versionsFile} is missing; run examples/pkgs/prepare.sh"
    else
      let found = builtins.fromJSON (builtins.readFile versionsFile);
      in if attrNames found != builtins.sort builtins.lessThan listed then
        throw "examples/pkgs: .prepared does not match debian.json; run examples/pkgs/prepare.sh"
      else
        found;

  deb = name:
    if builtins.elem name listed then {
      root = "${platform.tree}/root/${name}";
      version = versions.${name};
    } else
      throw "examples/pkgs: Debian package ${name} is not listed in debian.json";

  # "2:6.2.1+dfsg1-1.1" -> "6.2.1": no epoch, Debian revision or repack suffix, and nothing
  # from a "~" on ("~" and ":" are not allowed in store path names).
  upstreamVersion = debianVersion:
    let
      noEpoch = elemAt (match "([0-9]+:)?(.*)" debianVersion) 1;
      noRevision = match "(.*)-[^-]*" noEpoch;
      upstream =
        head (match "([^~]*).*" (if noRevision == null then noEpoch else head noRevision));
      noRepack = match "(.*)[.+]dfsg[0-9]*" upstream;
    in if noRepack == null then upstream else head noRepack;

  # Every package is a derivation run by the host's /bin/sh. `debs` names the Debian packages
  # it copies from; their exact versions go into the derivation, so that its store path changes
  # when Debian's binaries do. `data` ({ dest = src; }) is copied into $out as is.
  mkPackage =
    { pname, debs ? [ ], version ? upstreamVersion (deb (head debs)).version
    , builder ? ./builder.sh, data ? { }, ... }@attrs:
    builtins.derivation (removeAttrs attrs [ "builder" ] // {
      inherit system version;
      inherit (platform) triplet loader check;
      name = "${pname}-${version}";
      outputs = [ "out" ];
      builder = "/bin/sh";
      args = [ builder ];
      debs = map (name: (deb name).root) debs;
      debianVersions = map (name: "${name}=${(deb name).version}") debs;
      data = map (dest: "${dest}=${data.${dest}}") (attrNames data);
    });

  # Debian packages as one package with ELF files: their libraries in $out/lib, their ELF
  # programs (or only `programs`) in $out/bin. `deps` are the packages whose libraries these
  # load; glibc is always one.
  debianPackage = { deps ? [ ], ... }@attrs:
    mkPackage (removeAttrs attrs [ "deps" ] // {
      interpreter = "${glibc}/lib/${platform.loader}";
      libPath = concatStringsSep ":" (map (dep: "${dep}/lib") (deps ++ [ glibc ]));
    });

  # The loader and libraries of Debian's libc6; its libraries find each other in $out/lib.
  glibc = mkPackage {
    pname = "glibc";
    debs = [ "libc6" ];
    interpreter = builtins.placeholder "out" + "/lib/${platform.loader}";
  };

  # Libraries, one attribute per upstream project as in nixpkgs.
  acl = debianPackage { pname = "acl"; debs = [ "libacl1" ]; };
  attr = debianPackage { pname = "attr"; debs = [ "libattr1" ]; };
  brotli = debianPackage { pname = "brotli"; debs = [ "libbrotli1" ]; };
  cyrus_sasl = debianPackage { pname = "cyrus-sasl"; debs = [ "libsasl2-2" ]; };
  # Only libcom_err, which Kerberos uses.
  e2fsprogs = debianPackage { pname = "e2fsprogs"; debs = [ "libcom-err2" ]; };
  gmp = debianPackage { pname = "gmp"; debs = [ "libgmp10" ]; };
  gnutls = debianPackage {
    pname = "gnutls";
    debs = [ "libgnutls30" ];
    deps = [ gmp libidn2 libtasn1 libunistring nettle p11-kit ];
  };
  keyutils = debianPackage { pname = "keyutils"; debs = [ "libkeyutils1" ]; };
  libbsd = debianPackage {
    pname = "libbsd";
    debs = [ "libbsd0" ];
    deps = [ libmd ];
  };
  libffi = debianPackage { pname = "libffi"; debs = [ "libffi8" ]; };
  libidn2 = debianPackage {
    pname = "libidn2";
    debs = [ "libidn2-0" ];
    deps = [ libunistring ];
  };
  libkrb5 = debianPackage {
    pname = "libkrb5";
    debs = [ "libkrb5-3" "libgssapi-krb5-2" "libk5crypto3" "libkrb5support0" ];
    deps = [ e2fsprogs keyutils ];
  };
  libmd = debianPackage { pname = "libmd"; debs = [ "libmd0" ]; };
  libpsl = debianPackage {
    pname = "libpsl";
    debs = [ "libpsl5" ];
    deps = [ libidn2 libunistring ];
  };
  libselinux = debianPackage {
    pname = "libselinux";
    debs = [ "libselinux1" ];
    deps = [ pcre2 ];
  };
  libssh2 = debianPackage {
    pname = "libssh2";
    debs = [ "libssh2-1" ];
    deps = [ openssl zlib ];
  };
  libtasn1 = debianPackage { pname = "libtasn1"; debs = [ "libtasn1-6" ]; };
  libunistring = debianPackage { pname = "libunistring"; debs = [ "libunistring2" ]; };
  ncurses = debianPackage {
    pname = "ncurses";
    debs = [ "libncursesw6" "libtinfo6" "ncurses-base" ];
    # Terminal descriptions, where nixpkgs' ncurses keeps them (reach them with TERMINFO_DIRS).
    data."share/terminfo" = (deb "ncurses-base").root + "/lib/terminfo";
  };
  nettle = debianPackage {
    pname = "nettle";
    debs = [ "libnettle8" "libhogweed6" ];
    deps = [ gmp ];
  };
  nghttp2 = debianPackage { pname = "nghttp2"; debs = [ "libnghttp2-14" ]; };
  oniguruma = debianPackage { pname = "oniguruma"; debs = [ "libonig5" ]; };
  openldap = debianPackage {
    pname = "openldap";
    debs = [ "libldap-2.5-0" ];
    deps = [ cyrus_sasl gnutls ];
  };
  openssl = debianPackage { pname = "openssl"; debs = [ "libssl3" ]; };
  p11-kit = debianPackage {
    pname = "p11-kit";
    debs = [ "libp11-kit0" ];
    deps = [ libffi ];
  };
  pcre2 = debianPackage { pname = "pcre2"; debs = [ "libpcre2-8-0" ]; };
  rtmpdump = debianPackage {
    pname = "rtmpdump";
    debs = [ "librtmp1" ];
    deps = [ gmp gnutls nettle zlib ];
  };
  zlib = debianPackage { pname = "zlib"; debs = [ "zlib1g" ]; };
  zstd = debianPackage { pname = "zstd"; debs = [ "libzstd1" ]; };

  xorg = {
    # Lets `nix-build examples/pkgs` (no -A) build the nested packages too, as in nixpkgs.
    recurseForDerivations = true;

    libX11 = debianPackage {
      pname = "libX11";
      debs = [ "libx11-6" ];
      deps = [ xorg.libxcb ];
    };
    libXau = debianPackage { pname = "libXau"; debs = [ "libxau6" ]; };
    libXdmcp = debianPackage {
      pname = "libXdmcp";
      debs = [ "libxdmcp6" ];
      deps = [ libbsd ];
    };
    libXext = debianPackage {
      pname = "libXext";
      debs = [ "libxext6" ];
      deps = [ xorg.libX11 ];
    };
    libXrandr = debianPackage {
      pname = "libXrandr";
      debs = [ "libxrandr2" ];
      deps = [ xorg.libX11 xorg.libXext xorg.libXrender ];
    };
    libXrender = debianPackage {
      pname = "libXrender";
      debs = [ "libxrender1" ];
      deps = [ xorg.libX11 ];
    };
    libxcb = debianPackage {
      pname = "libxcb";
      debs = [ "libxcb1" ];
      deps = [ xorg.libXau xorg.libXdmcp ];
    };
    # Debian's x11-utils holds a dozen programs; xev is the one whose libraries are here.
    xev = debianPackage {
      pname = "xev";
      debs = [ "x11-utils" ];
      programs = [ "xev" ];
      deps = [ xorg.libX11 xorg.libXrandr ];
    };
  };
in
{
  inherit
    acl attr brotli cyrus_sasl e2fsprogs glibc gmp gnutls keyutils libbsd libffi libidn2
    libkrb5 libmd libpsl libselinux libssh2 libtasn1 libunistring ncurses nettle nghttp2
    oniguruma openldap openssl p11-kit pcre2 rtmpdump xorg zlib zstd;

  # Debian builds bash once, with its own copy of readline. bashInteractive is the same binary
  # under nixpkgs' other name, so that the two are distinct store paths as in nixpkgs.
  bash = debianPackage {
    pname = "bash";
    debs = [ "bash" ];
    deps = [ ncurses ];
  };
  bashInteractive = debianPackage {
    pname = "bash-interactive";
    debs = [ "bash" ];
    deps = [ ncurses ];
  };

  busybox = debianPackage { pname = "busybox"; debs = [ "busybox" ]; };

  cacert = mkPackage {
    pname = "nss-cacert";
    debs = [ "ca-certificates" ];
    builder = ./cacert.sh;
  };

  coreutils = debianPackage {
    pname = "coreutils";
    debs = [ "coreutils" ];
    deps = [ acl attr gmp libselinux ];
  };

  curl = debianPackage {
    pname = "curl";
    debs = [ "curl" "libcurl4" ];
    deps = [
      brotli libidn2 libkrb5 libpsl libssh2 nghttp2 openldap openssl rtmpdump zlib zstd
    ];
  };

  hello = debianPackage { pname = "hello"; debs = [ "hello" ]; };

  iana-etc = mkPackage {
    pname = "iana-etc";
    debs = [ "netbase" ];
    data = {
      "etc/protocols" = (deb "netbase").root + "/etc/protocols";
      "etc/services" = (deb "netbase").root + "/etc/services";
    };
  };

  jq = debianPackage { pname = "jq"; debs = [ "jq" "libjq1" ]; deps = [ oniguruma ]; };

  # 64 MiB that no compressor shrinks, for benchmarks. prepare.sh makes it and checks its hash,
  # so its content never changes and a constant version will do.
  large = mkPackage {
    pname = "large";
    version = "1";
    data."share/large/large.bin" = prepared + "/large.bin";
  };

  # Only moreutils' ELF programs: the others are perl scripts, and perl is not in the set.
  moreutils = debianPackage {
    pname = "moreutils";
    debs = [ "moreutils" ];
    programs = [ "errno" "ifdata" "ifne" "isutf8" "lckdo" "mispipe" "parallel" "pee" "sponge" ];
  };

  nano = debianPackage { pname = "nano"; debs = [ "nano" ]; deps = [ ncurses ]; };
}
