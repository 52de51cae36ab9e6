// Image config and manifests: exact bytes for small examples (written out by hand), digests that
// are the sha256 of those bytes, and the same bytes every time.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  buildDockerManifest,
  buildImageConfig,
  buildOciManifest,
  DOCKER_MANIFEST_V2,
  OCI_IMAGE_CONFIG,
  OCI_IMAGE_MANIFEST,
  type BuiltDocument,
  type Digest,
} from '../src/index.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;

function assertDescribes(built: BuiltDocument, mediaType: string): void {
  assert.equal(built.descriptor.mediaType, mediaType);
  assert.equal(built.descriptor.digest, `sha256:${createHash('sha256').update(built.bytes).digest('hex')}`);
  assert.equal(built.descriptor.size, built.bytes.length);
}

describe('buildImageConfig', () => {
  it('writes the exact OCI config, with a fixed creation time', () => {
    const built = buildImageConfig({
      system: 'x86_64-linux',
      diffIds: [d('a'), d('b')],
      env: ['PATH=/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'],
      cmd: ['/bin/bash'],
      labels: { 'org.b': '2', 'org.a': '1' },
    });
    const history = '{"created":"1970-01-01T00:00:01Z","created_by":"nixyard"}';
    const expected =
      '{"created":"1970-01-01T00:00:01Z","architecture":"amd64","os":"linux",' +
      '"config":{"Env":["PATH=/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"],"Cmd":["/bin/bash"],' +
      '"Labels":{"org.a":"1","org.b":"2"}},' +
      `"rootfs":{"type":"layers","diff_ids":["${d('a')}","${d('b')}"]},` +
      `"history":[${history},${history}]}`;
    assert.equal(built.bytes.toString('utf8'), expected);
    assertDescribes(built, OCI_IMAGE_CONFIG);
  });

  it('leaves out Cmd and Labels when not given, and maps aarch64 to arm64', () => {
    const built = buildImageConfig({ system: 'aarch64-linux', diffIds: [d('c')], env: [] });
    assert.equal(
      built.bytes.toString('utf8'),
      '{"created":"1970-01-01T00:00:01Z","architecture":"arm64","os":"linux","config":{"Env":[]},' +
        `"rootfs":{"type":"layers","diff_ids":["${d('c')}"]},` +
        '"history":[{"created":"1970-01-01T00:00:01Z","created_by":"nixyard"}]}',
    );
    assertDescribes(built, OCI_IMAGE_CONFIG);
  });

  it('is deterministic: same inputs, same bytes, whatever the label insertion order', () => {
    const input = { system: 'x86_64-linux' as const, diffIds: [d('1')], env: ['A=1'], cmd: ['sh'] };
    const one = buildImageConfig({ ...input, labels: { x: '1', a: '2', m: '3' } });
    const two = buildImageConfig({ ...input, labels: { m: '3', x: '1', a: '2' } });
    assert.deepEqual(one.bytes, two.bytes);
    assert.deepEqual(one.descriptor, two.descriptor);
  });

  it('keeps a label named __proto__ as data', () => {
    const labels = JSON.parse('{"__proto__":"x"}') as Record<string, string>;
    const built = buildImageConfig({ system: 'x86_64-linux', diffIds: [], env: [], labels });
    assert.match(built.bytes.toString('utf8'), /"Labels":\{"__proto__":"x"\}/);
  });

  it('refuses diff ids that are not digests', () => {
    assert.throws(() => buildImageConfig({ system: 'x86_64-linux', diffIds: ['sha256:nope' as Digest], env: [] }), TypeError);
  });
});

describe('manifests', () => {
  const config = { digest: d('c'), size: 1234 };
  const layers = [
    { digest: d('1'), size: 100 },
    { digest: d('2'), size: 200 },
  ];

  it('writes the exact OCI image manifest', () => {
    const built = buildOciManifest(config, layers);
    const expected =
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' +
      `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${d('c')}","size":1234},` +
      '"layers":[' +
      `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${d('1')}","size":100},` +
      `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${d('2')}","size":200}]}`;
    assert.equal(built.bytes.toString('utf8'), expected);
    assertDescribes(built, OCI_IMAGE_MANIFEST);
  });

  it('writes the exact Docker schema 2 manifest over the same blobs', () => {
    const built = buildDockerManifest(config, layers);
    const expected =
      '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",' +
      `"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"${d('c')}","size":1234},` +
      '"layers":[' +
      `{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"${d('1')}","size":100},` +
      `{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"${d('2')}","size":200}]}`;
    assert.equal(built.bytes.toString('utf8'), expected);
    assertDescribes(built, DOCKER_MANIFEST_V2);
  });

  it('chains: the config descriptor goes into the manifest as digest and size', () => {
    const builtConfig = buildImageConfig({ system: 'x86_64-linux', diffIds: [d('9')], env: ['PATH=/bin'] });
    const manifest = JSON.parse(buildOciManifest(builtConfig.descriptor, [{ digest: d('8'), size: 1 }]).bytes.toString());
    const { digest, size } = builtConfig.descriptor;
    assert.deepEqual(manifest.config, { mediaType: OCI_IMAGE_CONFIG, digest, size });
    const docker = JSON.parse(buildDockerManifest(builtConfig.descriptor, []).bytes.toString());
    assert.deepEqual(docker.config, { mediaType: 'application/vnd.docker.container.image.v1+json', digest, size });
  });

  it('is deterministic and copies no extra fields from its inputs', () => {
    const withExtras = { ...config, mediaType: 'ignored', annotations: { a: 'b' } };
    assert.deepEqual(buildOciManifest(withExtras, layers).bytes, buildOciManifest(config, layers).bytes);
    assert.deepEqual(buildDockerManifest(config, layers).bytes, buildDockerManifest(config, [...layers]).bytes);
  });

  it('refuses bad digests and sizes', () => {
    assert.throws(() => buildOciManifest({ digest: 'sha256:x' as Digest, size: 1 }, []), TypeError);
    assert.throws(() => buildOciManifest(config, [{ digest: d('1'), size: -1 }]), TypeError);
    assert.throws(() => buildDockerManifest(config, [{ digest: d('1'), size: 1.5 }]), TypeError);
  });
});
