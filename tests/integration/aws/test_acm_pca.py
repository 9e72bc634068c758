"""ACM PCA on moto: revoke by serial, verified only through a CRL the CA published and signed.

moto records RevokeCertificate calls but does not publish CRLs. `_publish_crl` plays ACM PCA's CRL
publisher: it writes, signed with the CA's own key, a DER CRL of exactly the revocations moto recorded, to
the bucket and key the CA's CrlConfiguration names. The handler's read-back (S3, signature, serial) is real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto.acmpca.models import acmpca_backends

from rescind.aws.acm_pca import AcmPcaCertificateHandler, serial_to_int
from rescind.aws.session import AwsClientFactory
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.models import AcmPcaCertificateRef, Action, ActionKind
from tests.conftest import TEST_EXTERNAL_ID

OWN = "123456789012"
OTHER = "111111111111"
REGION = "us-east-1"


def _client_in(service: Any, account_id: str) -> Any:
    if account_id == OWN:
        return boto3.client(service, region_name=REGION)
    creds = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _active_ca(account_id: str, *, bucket: str | None) -> str:
    """A root CA, activated with its own certificate, writing CRLs to `bucket` (none when None)."""
    pca = _client_in("acm-pca", account_id)
    crl: dict[str, Any] = {"Enabled": False}
    if bucket is not None:
        _client_in("s3", account_id).create_bucket(Bucket=bucket)
        crl = {"Enabled": True, "S3BucketName": bucket, "ExpirationInDays": 7}
    arn: str = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": "rescind-test-root"},
        },
        RevocationConfiguration={"CrlConfiguration": crl},
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    cert_arn = pca.issue_certificate(
        CertificateAuthorityArn=arn,
        Csr=csr,
        SigningAlgorithm="SHA256WITHRSA",
        TemplateArn="arn:aws:acm-pca:::template/RootCACertificate/V1",
        Validity={"Value": 1, "Type": "YEARS"},
    )["CertificateArn"]
    ca_cert = pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=cert_arn)["Certificate"]
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=ca_cert)
    return arn


def _issue_leaf(account_id: str, ca_arn: str) -> str:
    """Issue an end-entity certificate and return its serial as lowercase colon hex."""
    pca = _client_in("acm-pca", account_id)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "payments.internal")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert_arn = pca.issue_certificate(
        CertificateAuthorityArn=ca_arn,
        Csr=csr,
        SigningAlgorithm="SHA256WITHRSA",
        Validity={"Value": 30, "Type": "DAYS"},
    )["CertificateArn"]
    pem = pca.get_certificate(CertificateAuthorityArn=ca_arn, CertificateArn=cert_arn)["Certificate"]
    hex_serial = f"{x509.load_pem_x509_certificate(pem.encode()).serial_number:x}"
    hex_serial = hex_serial.zfill(len(hex_serial) + len(hex_serial) % 2)
    return ":".join(hex_serial[i : i + 2] for i in range(0, len(hex_serial), 2))


def _moto_ca(ca_arn: str) -> Any:
    account_id = ca_arn.split(":")[4]
    return acmpca_backends[account_id][REGION].describe_certificate_authority(ca_arn)


def _publish_crl(ca_arn: str, *, signing_key: Any = None) -> None:
    """What ACM PCA does after a revocation: publish a signed CRL of the recorded revocations to S3."""
    ca = _moto_ca(ca_arn)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
    )
    for serial, record in ca.revoked_certificates.items():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial_to_int(serial))
            .revocation_date(datetime.fromtimestamp(record["revocation_time"], UTC))
            .build()
        )
    crl = builder.sign(signing_key or ca.key, hashes.SHA256())
    config = ca.revocation_configuration["CrlConfiguration"]
    _client_in("s3", ca.account_id).put_object(
        Bucket=config["S3BucketName"],
        Key=f"crl/{ca.id}.crl",
        Body=crl.public_bytes(serialization.Encoding.DER),
    )


def _revoke(ca_arn: str, serial: str) -> Action:
    ref = AcmPcaCertificateRef(ca_arn=ca_arn, serial=serial)
    return Action(kind=ActionKind.REVOKE, target=ref, reason="private key leaked")


def test_revoke_is_confirmed_only_once_the_crl_lists_it(aws: None) -> None:
    # Given an active CA with a CRL bucket, and two certificates it issued
    ca_arn = _active_ca(OWN, bucket="pca-crl-own")
    leaked = _issue_leaf(OWN, ca_arn)
    other = _issue_leaf(OWN, ca_arn)
    handler = AcmPcaCertificateHandler(AwsClientFactory())
    action = _revoke(ca_arn, leaked)

    # When the leaked one is revoked
    first = handler.act(action)

    # Then ACM PCA recorded exactly that revocation, but without a CRL there is no proof yet
    assert first.changed
    assert set(_moto_ca(ca_arn).revoked_certificates) == {leaked}
    assert _moto_ca(ca_arn).revoked_certificates[leaked]["revocation_reason"] == "KEY_COMPROMISE"
    pending = handler.verify(action)
    assert not pending.confirmed
    assert "no CRL has been published" in pending.observed

    # When the CA publishes its CRL, verify confirms, and a second run is already absent
    _publish_crl(ca_arn)
    evidence = handler.verify(action)
    assert evidence.confirmed
    assert f"lists serial {leaked}" in evidence.observed
    second = handler.act(action)
    assert not second.changed
    assert second.absent
    assert "already absent" in second.detail

    # And the other certificate is neither revoked nor listed
    assert not handler.verify(_revoke(ca_arn, other)).confirmed
    assert other not in _moto_ca(ca_arn).revoked_certificates


def test_crl_not_signed_by_the_ca_is_no_proof(aws: None) -> None:
    ca_arn = _active_ca(OWN, bucket="pca-crl-forged")
    serial = _issue_leaf(OWN, ca_arn)
    handler = AcmPcaCertificateHandler(AwsClientFactory())
    action = _revoke(ca_arn, serial)
    handler.act(action)
    _publish_crl(ca_arn, signing_key=ec.generate_private_key(ec.SECP256R1()))

    evidence = handler.verify(action)
    assert not evidence.confirmed
    assert "not signed by the CA" in evidence.observed
    # A forged CRL does not make act skip the revocation either
    assert handler.act(action).changed


def test_ca_without_crl_cannot_be_confirmed(aws: None) -> None:
    ca_arn = _active_ca(OWN, bucket=None)
    serial = _issue_leaf(OWN, ca_arn)
    handler = AcmPcaCertificateHandler(AwsClientFactory(), revocation_reason="SUPERSEDED")
    action = _revoke(ca_arn, serial)

    assert handler.act(action).changed
    assert _moto_ca(ca_arn).revoked_certificates[serial]["revocation_reason"] == "SUPERSEDED"
    evidence = handler.verify(action)
    assert not evidence.confirmed
    assert "publishes no complete CRL" in evidence.observed
    # moto 5.2.5 gap: AWS answers a repeated revoke with RequestAlreadyProcessedException (handled as
    # "already absent"); moto accepts it again. Without a CRL to read first, the rerun calls revoke again.
    assert handler.act(action).changed


def test_cross_account_revoke_touches_only_the_target_account(aws: None) -> None:
    their_ca = _active_ca(OTHER, bucket="pca-crl-other")
    our_ca = _active_ca(OWN, bucket="pca-crl-ours")
    serial = _issue_leaf(OTHER, their_ca)
    handler = AcmPcaCertificateHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _revoke(their_ca, serial)

    assert handler.act(action).changed
    _publish_crl(their_ca)
    assert handler.verify(action).confirmed
    assert handler.act(action).absent
    assert set(_moto_ca(their_ca).revoked_certificates) == {serial}
    assert _moto_ca(our_ca).revoked_certificates == {}
    assert acmpca_backends[OWN][REGION].certificate_authorities.keys() == {our_ca}


def test_bad_input_is_refused(aws: None) -> None:
    with pytest.raises(InvalidInput, match="revocation reason"):
        AcmPcaCertificateHandler(AwsClientFactory(), revocation_reason="BECAUSE")  # type: ignore[arg-type]
    missing_ca = f"arn:aws:acm-pca:{REGION}:{OWN}:certificate-authority/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ActionFailed, match="does not exist"):
        AcmPcaCertificateHandler(AwsClientFactory()).act(_revoke(missing_ca, "0a:1b"))
