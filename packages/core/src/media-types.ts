// Media types: the exact strings that name manifests, indexes, configs and layers on the wire.
// Clients negotiate on them (Accept / Content-Type), so a typo here is a pull that fails; they live
// in one file so every module spells them the same way.

export const OCI_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_IMAGE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const DOCKER_MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_IMAGE_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** The single-image manifest types a build can publish. */
export const MANIFEST_MEDIA_TYPES = [OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_V2] as const;
export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

/** The multi-platform index types. */
export const INDEX_MEDIA_TYPES = [OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST] as const;
export type IndexMediaType = (typeof INDEX_MEDIA_TYPES)[number];
