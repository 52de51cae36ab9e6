# Looks package attribute paths up in a package set, treating every name as data.
#
# The worker passes all of its input as strings (`--argstr`), and the names arrive as one JSON
# array that is parsed here with builtins.fromJSON: a hostile name can never become Nix code.
# Lookups walk the attribute path with builtins.hasAttr, so a missing name is reported in a
# list instead of surfacing as an evaluation error whose prose we would have to parse.
#
# It uses nothing but builtins and `import <source> { system = ...; }`, so it works the same
# against real nixpkgs and against the bundled offline package set.
{ sourceJSON, system, packagesJSON }:
let
  source = builtins.fromJSON sourceJSON;
  names = builtins.fromJSON packagesJSON;

  # Where the package set comes from, as data: a local path, a git commit, or a nixpkgs channel
  # (a channel name, or a nixpkgs commit for a pinned image). `-A sourceSpec` shows what would be
  # fetched without fetching it.
  isCommit = s: builtins.match "[0-9a-f]{40}" s != null;
  sourceSpec =
    if source.kind == "path" then { path = source.path; }
    else if source.kind == "git" then { git = { url = source.url; rev = source.rev; allRefs = true; }; }
    else if source.kind == "channel" then {
      tarball =
        if isCommit source.channel
        then "https://github.com/NixOS/nixpkgs/archive/${source.channel}.tar.gz"
        else "https://nixos.org/channels/${source.channel}/nixexprs.tar.xz";
    }
    else throw "nixyard: unknown package source kind '${source.kind}'";

  sourcePath =
    if sourceSpec ? path then sourceSpec.path
    else if sourceSpec ? git then builtins.fetchGit sourceSpec.git
    else builtins.fetchTarball sourceSpec.tarball;

  pkgs = import sourcePath { inherit system; };

  segmentsOf = name: builtins.filter builtins.isString (builtins.split "\\." name);

  lookup = set: segments:
    if segments == [ ] then { found = true; value = set; }
    else
      let head = builtins.head segments; in
      if builtins.isAttrs set && builtins.hasAttr head set
      then lookup (builtins.getAttr head set) (builtins.tail segments)
      else { found = false; };

  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";

  # Documentation outputs are useless in a container; everything else that nixpkgs would
  # install into a profile (meta.outputsToInstall) goes into the image.
  docOutputs = [ "man" "doc" "devdoc" "info" ];
  outputsOf = drv:
    let
      wanted = drv.meta.outputsToInstall or [ (drv.outputName or "out") ];
      kept = builtins.filter (o: !(builtins.elem o docOutputs)) wanted;
    in if kept == [ ] then [ (drv.outputName or "out") ] else kept;

  # Evaluating a package or its output paths can throw (broken, unfree or insecure packages in
  # nixpkgs); tryEval turns that into data as well.
  resolveOne = name:
    let
      r = lookup pkgs (segmentsOf name);
      isPackage = builtins.tryEval (r.found && isDerivation r.value);
    in
    if !isPackage.success then { inherit name; status = "unavailable"; }
    else if !isPackage.value then { inherit name; status = "unknown"; }
    else
      let
        outputs = builtins.listToAttrs (map
          (o: { name = o; value = builtins.tryEval (builtins.getAttr o r.value).outPath; })
          (outputsOf r.value));
        ok = builtins.all (v: v.success) (builtins.attrValues outputs);
      in
      if !ok then { inherit name; status = "unavailable"; }
      else {
        inherit name;
        status = "ok";
        outputs = builtins.mapAttrs (_: v: v.value) outputs;
      };

  resolved = map resolveOne names;
  withStatus = status: builtins.filter (r: r.status == status) resolved;
in
{
  inherit sourceSpec;

  # `nix-instantiate --eval --strict --json -A result`: what was found and what was not.
  result = {
    unknown = map (r: r.name) (withStatus "unknown");
    unavailable = map (r: r.name) (withStatus "unavailable");
    packages = map (r: { inherit (r) name outputs; }) (withStatus "ok");
  };

  # `nix-instantiate --eval --strict --json -A attributeNames`: the set's top-level names, for
  # the API's index of known packages (only the names are forced, not the packages).
  attributeNames = builtins.attrNames pkgs;

  # `nix-build -A outputs`: every selected output of every found package.
  outputs = builtins.concatMap
    (name:
      let drv = (lookup pkgs (segmentsOf name)).value; in
      map (o: builtins.getAttr o drv) (outputsOf drv))
    (map (r: r.name) (withStatus "ok"));
}
