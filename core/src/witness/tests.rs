use super::*;
use crate::checkpoint::LogSigner;
use crate::merkle::Hash;

fn witness(name: &str, seed: u8) -> WitnessSigner {
    WitnessSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn log_note(size: u64) -> Vec<u8> {
    LogSigner::new("log.example", SigningKey::from_bytes(&[1; 32]))
        .unwrap()
        .sign(size, Hash([size as u8; 32]))
        .note
}

fn body(note: &[u8]) -> Vec<u8> {
    Note::from_bytes(note).unwrap().text().to_vec()
}

fn cosigned(note: &[u8], signers: &[&WitnessSigner], timestamp: u64) -> Vec<u8> {
    let lines: Vec<Cosignature> = signers
        .iter()
        .map(|s| s.cosign(&body(note), timestamp))
        .collect();
    append_cosignatures(note, &lines).unwrap()
}

#[test]
fn spec_example_cosignature_line_parses() {
    // tlog-cosignature's example: its timestamp is the `time 1679315147` of the spec's
    // signed-message example.
    let line = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
    let c = Cosignature::from_line(line).unwrap();
    assert_eq!(c.name, "witness.example.com/w1");
    assert_eq!(c.key_id, 0x8d66_cf3f);
    assert_eq!(c.timestamp, 1_679_315_147);
    assert_eq!(c.to_line(), format!("{line}\n"));
}

#[test]
fn spec_example_signed_message() {
    let body =
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(
        cosigned_message(body, 1_679_315_147),
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
}

#[test]
fn key_id_uses_the_cosignature_type_byte() {
    let w = witness("witness.example/w1", 3);
    let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
    let mut material = vec![0x04];
    material.extend_from_slice(key.as_bytes());
    assert_eq!(
        w.verifier().key_id(),
        signed_note::key_id("witness.example/w1", &material)
    );
    // The same key as a log (type 0x01) has another id, so neither passes for the other.
    let log = LogSigner::new("witness.example/w1", SigningKey::from_bytes(&[3; 32])).unwrap();
    assert_ne!(log.verifier().key_id(), w.verifier().key_id());
    assert!(WitnessVerifier::from_vkey(&log.verifier_key()).is_err());
    assert!(crate::checkpoint::LogVerifier::from_vkey(&w.verifier().to_vkey()).is_err());
}

#[test]
fn vkeys_round_trip_and_malformed_ones_are_refused() {
    let vkey = witness("witness.example/w1", 3).verifier().to_vkey();
    assert!(vkey.starts_with("witness.example/w1+"));
    assert_eq!(WitnessVerifier::from_vkey(&vkey).unwrap().to_vkey(), vkey);
    let cases = [
        String::new(),
        "nokey".into(),
        "name+1234+BAAA".into(),
        vkey.replace("witness.example/w1", "witness.example/w2"),
        format!("{vkey}AA"),
        vkey.replacen('+', " +", 1),
    ];
    for c in cases {
        assert!(WitnessVerifier::from_vkey(&c).is_err(), "{c:?} accepted");
    }
}

#[test]
fn cosignature_verifies_over_the_body_and_timestamp() {
    let w = witness("witness.example/w1", 3);
    let note = log_note(5);
    let c = w.cosign(&body(&note), 1_700_000_000);
    w.verifier().verify(&body(&note), &c).unwrap();
    let mut later = c.clone();
    later.timestamp += 1;
    assert!(w.verifier().verify(&body(&note), &later).is_err());
    assert!(w.verifier().verify(&body(&log_note(6)), &c).is_err());
    let other = witness("witness.example/w1", 4);
    assert!(other.verifier().verify(&body(&note), &c).is_err());
}

#[test]
fn policy_counts_distinct_trusted_witnesses() {
    let (a, b, c) = (
        witness("w.example/a", 3),
        witness("w.example/b", 4),
        witness("w.example/c", 5),
    );
    let note = log_note(9);
    let two = cosigned(&note, &[&a, &b], 1_700_000_000);
    let trust = vec![a.verifier(), b.verifier(), c.verifier()];
    let got = WitnessPolicy::new(trust.clone(), 2)
        .unwrap()
        .check(&two)
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(matches!(
        WitnessPolicy::new(trust.clone(), 3).unwrap().check(&two),
        Err(WitnessError::TooFewCosignatures { valid: 2, min: 3 })
    ));
    // The same witness twice counts once, and a repeated trusted key counts once.
    let twice = cosigned(&cosigned(&note, &[&a], 1), &[&a], 2);
    assert!(
        WitnessPolicy::new(vec![a.verifier(), a.verifier(), b.verifier()], 2)
            .unwrap()
            .check(&twice)
            .is_err()
    );
    // Unknown witnesses do not count, and are ignored.
    let stranger = witness("w.example/z", 9);
    let strange = cosigned(&note, &[&stranger, &a], 1);
    assert_eq!(
        WitnessPolicy::new(trust.clone(), 1)
            .unwrap()
            .check(&strange)
            .unwrap()
            .len(),
        1
    );
    assert!(WitnessPolicy::new(trust, 4).is_err());
    assert!(WitnessPolicy::none().check(&note).unwrap().is_empty());
}

#[test]
fn a_bad_line_by_a_trusted_witness_rejects_the_note() {
    let a = witness("w.example/a", 3);
    let note = log_note(9);
    let mut forged = a.cosign(&body(&note), 5);
    forged.signature[0] ^= 1;
    let bad = append_cosignatures(&note, &[forged]).unwrap();
    assert!(matches!(
        WitnessPolicy::new(vec![a.verifier()], 0)
            .unwrap()
            .check(&bad),
        Err(WitnessError::BadCosignature { .. })
    ));
    // A cosignature moved onto another checkpoint does not verify there either.
    let moved = append_cosignatures(&log_note(10), &[a.cosign(&body(&note), 5)]).unwrap();
    assert!(WitnessPolicy::new(vec![a.verifier()], 1)
        .unwrap()
        .check(&moved)
        .is_err());
}

#[test]
fn cosigned_note_still_verifies_for_the_log() {
    let a = witness("w.example/a", 3);
    let note = log_note(3);
    let with = cosigned(&note, &[&a], 7);
    let log = LogSigner::new("log.example", SigningKey::from_bytes(&[1; 32])).unwrap();
    assert_eq!(log.verifier().verify(&with).unwrap().tree_size, 3);
    // Appending the same line twice keeps one copy.
    let again = append_cosignatures(&with, &[a.cosign(&body(&note), 7)]).unwrap();
    assert_eq!(again, with);
}

#[test]
fn policy_spec_example_cosignature_verifies() {
    // spec/policy.md section 5: the example note and the witness key it names.
    let note = "pedigree.example\n1204\ngiE0b8V2EdHHUJ07+VMhPoihNZlmqa2KNBmsRsCsYlM=\n\n\
— pedigree.example if3WMQf77Ud2fQGur+oAs03ZjhjyJB+WbtKDX+oLhSVtIi8bKnOC7Jt4P2QuEgSe1c6QoivQpHs5UagSbXslkVDcggs=\n\
— witness.example/w1 782ADAAAAABpIvpgmHPkrNIpQ6YJhwmdLnV6gHB2TOGkeoY6RDLpMFIQ971RMLrqjn/nS9E5FnVZfe91hLaW/s7F7my4LrLdZZDQCQ==\n";
    let log = crate::checkpoint::LogVerifier::from_vkey(
        "pedigree.example+89fdd631+AUOnLnFEAXYt9mtowm373yaCquyfJHTspGE+QkoPuv08",
    )
    .unwrap();
    assert_eq!(log.verify(note.as_bytes()).unwrap().tree_size, 1204);
    let keys = [
        "witness.example/w1+efcd800c+BGa+fjMsekUzMr2dCn99sFX1xe8aBq2mbZizn7aBDEc6",
        "witness.example/w2+023facbb+BAtROtm0kkAVygkC7QeQRNOsXb7CMG8GlIwQ2o62458t",
        "witness.other/w+f8e62415+BJGiigt0OBWTpNlGlXkgiSavyK2CyIObdkQ1m566mks6",
    ]
    .map(|k| WitnessVerifier::from_vkey(k).unwrap())
    .to_vec();
    let got = WitnessPolicy::new(keys.clone(), 1)
        .unwrap()
        .check(note.as_bytes())
        .unwrap();
    assert_eq!(
        got,
        vec![VerifiedCosignature {
            witness: "witness.example/w1".into(),
            timestamp: 1_763_900_000
        }]
    );
    assert!(WitnessPolicy::new(keys, 2)
        .unwrap()
        .check(note.as_bytes())
        .is_err());
}
