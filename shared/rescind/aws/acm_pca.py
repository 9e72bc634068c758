"""ACM PCA certificates: revoke by CA ARN + serial, verified through the CA's published CRL.

ACM PCA has no API that reads one certificate's revocation status. The read-backs that exist are the CRL the
CA publishes to S3 (typically about 30 minutes after a revocation), OCSP, and the asynchronous audit report.
`verify` reads the CRL: it fetches `s3://<S3BucketName>/<CustomPath or "crl">/<CA id>.crl`, checks its
signature against the CA certificate, and confirms only when the serial is listed. Until the CA has published
a CRL that lists it, or when the CA publishes no complete CRL at all, the evidence says so and is not
confirmed: an accepted RevokeCertificate call is not proof.

Idempotency: a serial already in the CRL, or RequestAlreadyProcessedException from RevokeCertificate (what
ACM PCA answers for a certificate it already revoked), is "already absent".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.session import AwsClientFactory, region_of_arn
from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.kinds import KindSpec, no_guard_facts
from rescind.models import AcmPcaCertificateRef, Action, ActionKind, ActOutcome, CredentialKind, Evidence

if TYPE_CHECKING:
    from mypy_boto3_acm_pca.client import ACMPCAClient

RevocationReason = Literal[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
]
REVOCATION_REASONS: frozenset[str] = frozenset(get_args(RevocationReason))


def serial_to_int(serial: str) -> int:
    return int(serial.replace(":", ""), 16)


@dataclass(frozen=True)
class CrlReading:
    """What the CA's published CRL says about one serial. `listed` is None when no CRL could be read."""

    listed: bool | None
    location: str
    observed: str


def crl_location(ca: dict[str, Any]) -> tuple[str, str] | None:
    """(bucket, key) of the CA's complete CRL; None when CRLs are off, partitioned or have no bucket."""
    config = ca.get("RevocationConfiguration", {}).get("CrlConfiguration", {})
    if not config.get("Enabled") or not config.get("S3BucketName") or config.get("CrlType") == "PARTITIONED":
        return None
    ca_id = ca["Arn"].rsplit("/", 1)[1]
    prefix = str(config.get("CustomPath") or "crl").strip("/")
    return str(config["S3BucketName"]), f"{prefix}/{ca_id}.crl"


def _describe_ca(pca: ACMPCAClient, ca_arn: str) -> dict[str, Any]:
    with aws_errors(f"acm-pca describe-certificate-authority {ca_arn}"):
        try:
            return dict(pca.describe_certificate_authority(CertificateAuthorityArn=ca_arn)["CertificateAuthority"])
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                # Its certificates stay valid until they expire: nothing can revoke them any more.
                raise ActionFailed(f"certificate authority {ca_arn} does not exist: cannot revoke") from None
            raise


def read_crl(pca: ACMPCAClient, s3: Any, ca: dict[str, Any], serial: str) -> CrlReading:
    """Fetch the CA's CRL from S3, check its signature against the CA certificate, look the serial up."""
    location = crl_location(ca)
    if location is None:
        return CrlReading(None, "none", "the CA publishes no complete CRL to S3 (CRL disabled or partitioned)")
    bucket, key = location
    where = f"s3://{bucket}/{key}"
    with aws_errors(f"s3 get-object {where}"):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "NoSuchBucket", "404"):
                return CrlReading(None, where, f"no CRL has been published at {where} yet")
            raise
    from cryptography import x509  # on use: most cold starts parse no CRL
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        crl = x509.load_der_x509_crl(body)
    except ValueError:
        try:
            crl = x509.load_pem_x509_crl(body)
        except ValueError:
            return CrlReading(None, where, f"the object at {where} is not a CRL")
    with aws_errors(f"acm-pca get-certificate-authority-certificate {ca['Arn']}"):
        ca_pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca["Arn"])["Certificate"]
    public_key = x509.load_pem_x509_certificate(ca_pem.encode()).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
        public_key
    ):
        return CrlReading(None, where, f"the CRL at {where} is not signed by the CA")
    listed = crl.get_revoked_certificate_by_serial_number(serial_to_int(serial)) is not None
    published = crl.last_update_utc.isoformat()
    state = "lists" if listed else "does not (yet) list"
    return CrlReading(listed, where, f"the CRL published at {published} to {where} {state} serial {serial}")


class AcmPcaCertificateHandler(KindHandler[AcmPcaCertificateRef]):
    """CredentialHandler for ACM PCA certificates: REVOKE with a configurable reason, verified by the CRL."""

    def __init__(self, factory: AwsClientFactory, *, revocation_reason: RevocationReason = "KEY_COMPROMISE") -> None:
        if revocation_reason not in REVOCATION_REASONS:
            raise InvalidInput(f"revocation reason must be one of {', '.join(sorted(REVOCATION_REASONS))}")
        super().__init__(
            CredentialKind.ACM_PCA_CERTIFICATE,
            AcmPcaCertificateRef,
            {ActionKind.REVOKE: Step.reads_alone(self._revoke, self._verify_revoked)},
        )
        self._factory = factory
        self._reason: RevocationReason = revocation_reason

    def _clients(self, ref: AcmPcaCertificateRef) -> tuple[ACMPCAClient, Any]:
        region = region_of_arn(ref.ca_arn)
        pca = self._factory.client("acm-pca", ref.account_id, region_name=region)
        s3 = self._factory.client("s3", ref.account_id, region_name=region)
        return pca, s3

    def _revoke(self, ref: AcmPcaCertificateRef, action: Action) -> ActOutcome:
        pca, s3 = self._clients(ref)
        cert = f"certificate {ref.serial} of {ref.ca_arn}"
        ca = _describe_ca(pca, ref.ca_arn)
        if crl_location(ca) is not None and read_crl(pca, s3, ca, ref.serial).listed:
            return ActOutcome(changed=False, absent=True, detail=f"already absent: {cert} is in the CA's CRL")
        with aws_errors(f"acm-pca revoke-certificate {ref.serial}"):
            try:
                pca.revoke_certificate(
                    CertificateAuthorityArn=ref.ca_arn, CertificateSerial=ref.serial, RevocationReason=self._reason
                )
            except ClientError as error:
                code = error_code(error)
                if code == "RequestAlreadyProcessedException":
                    return ActOutcome(changed=False, absent=True, detail=f"already absent: {cert} was already revoked")
                if code == "ResourceNotFoundException":
                    # A serial this CA never issued: the reference is wrong, the real certificate may be alive.
                    raise InvalidInput(f"{cert}: the CA knows no certificate with this serial") from None
                raise
        return ActOutcome(changed=True, detail=f"revoked {cert} ({self._reason})")

    def _verify_revoked(self, ref: AcmPcaCertificateRef, action: Action) -> Evidence:
        pca, s3 = self._clients(ref)
        ca = _describe_ca(pca, ref.ca_arn)
        reading = read_crl(pca, s3, ca, ref.serial)
        return Evidence(
            check="serial listed in the CRL the CA published to S3 (signature checked against the CA certificate)",
            observed=reading.observed,
            confirmed=bool(reading.listed),
        )

    def look_up(self, ref: AcmPcaCertificateRef) -> bool | None:
        # ACM PCA looks a certificate up by ARN, not serial: an unknown serial shows only when revoking
        # (ResourceNotFoundException, refused as InvalidInput), so it is unknown here.
        return None


KIND = KindSpec(
    kind=CredentialKind.ACM_PCA_CERTIFICATE,
    ref_type=AcmPcaCertificateRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: AcmPcaCertificateHandler(backends.require_aws()),
    read_guard_facts=no_guard_facts,
    discover=None,
    locate_leaked={},
    inventory=None,
)
