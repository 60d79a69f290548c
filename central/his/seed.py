"""The demo hospital: departments, doctors, weekly sessions, patients, pending bills and lab reports.

Deterministic for a given seed (``random.Random(seed)``), so a demo, a screenshot or a failing test shows the same
hospital on every machine. Patient 0 is the demo patient whose simulated ID card the kiosk demo carries.
"""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.crypto import FieldCipher
from central.his.adapter import Hospital
from central.his.reference import ehealth_code_index, id_number_index
from central.his.pinyin import name_initials
from central.his.tables import (HisBill, HisBillItem, HisDepartment, HisDoctor, HisDoctorDepartment,
                                HisEHealthCard, HisImagingReport, HisLabReport, HisLabResult, HisMedicalRecord, HisPatient,
                                HisSessionTemplate)
from drivers.idcard.idnumber import check_digit

HOSPITAL = Hospital(name="示范市人民医院", name_en="Demo City People's Hospital",
                    address="示范市中山路 1 号 / 1 Zhongshan Road, Demo City", phone="0797-12345678")

def id_number(region: str, birth: date, sequence: int) -> str:
    """An 18-digit resident ID number; the sequence's last digit is odd for men and even for women."""
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + check_digit(body)


DEMO_PATIENT: dict[str, Any] = {
    "name": "李秀英",
    "id_number": id_number("360702", date(1956, 3, 14), 28),
    "gender": "女",
    "birth": "1956-03-14",
    "address": "江西省赣州市章贡区文清路66号",
    "nation": "汉",
    "authority": "赣州市公安局章贡分局",
}
DEMO_PATIENT_ID = "P00000000"
#: The demo patient's e-health card (电子健康卡) code: 64 hexadecimal characters, the scanner's default rule.
DEMO_EHEALTH_CODE = "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8b9c7d5e3f1a2b4c6d8e0f1a3b5c7d9e2f"

# code, name, English name, category, location, English location
DEPARTMENTS: list[tuple[str, str, str, str, str, str]] = [
    ("JZNK", "急诊内科", "Emergency Medicine (24 h)", "急诊", "急诊楼1层 抢救大厅旁", "Emergency Bldg 1F, next to Resuscitation"),
    ("XXG", "心血管内科", "Cardiology", "内科", "门诊楼2层 A区", "Outpatient Bldg 2F, Zone A"),
    ("HXK", "呼吸与危重症医学科", "Respiratory and Critical Care Medicine", "内科", "门诊楼2层 B区", "Outpatient Bldg 2F, Zone B"),
    ("XHK", "消化内科", "Gastroenterology", "内科", "门诊楼2层 C区", "Outpatient Bldg 2F, Zone C"),
    ("NFM", "内分泌科", "Endocrinology", "内科", "门诊楼3层 A区", "Outpatient Bldg 3F, Zone A"),
    ("SJNK", "神经内科", "Neurology", "内科", "门诊楼3层 B区", "Outpatient Bldg 3F, Zone B"),
    ("SNK", "肾内科", "Nephrology", "内科", "门诊楼3层 C区", "Outpatient Bldg 3F, Zone C"),
    ("LNYX", "老年医学科", "Geriatrics", "内科", "门诊楼3层 D区", "Outpatient Bldg 3F, Zone D"),
    ("PTWK", "普通外科", "General Surgery", "外科", "门诊楼4层 A区", "Outpatient Bldg 4F, Zone A"),
    ("GK", "骨科", "Orthopaedics", "外科", "门诊楼4层 B区", "Outpatient Bldg 4F, Zone B"),
    ("MNWK", "泌尿外科", "Urology", "外科", "门诊楼4层 C区", "Outpatient Bldg 4F, Zone C"),
    ("SJWK", "神经外科", "Neurosurgery", "外科", "门诊楼4层 D区", "Outpatient Bldg 4F, Zone D"),
    ("XXWK", "心胸外科", "Cardiothoracic Surgery", "外科", "门诊楼5层 A区", "Outpatient Bldg 5F, Zone A"),
    ("FK", "妇科", "Gynaecology", "妇产科", "门诊楼5层 B区", "Outpatient Bldg 5F, Zone B"),
    ("CK", "产科", "Obstetrics", "妇产科", "门诊楼5层 C区", "Outpatient Bldg 5F, Zone C"),
    ("EK", "儿科", "Paediatrics", "儿科", "门诊楼1层 B区", "Outpatient Bldg 1F, Zone B"),
    ("YK", "眼科", "Ophthalmology", "五官科", "门诊楼6层 A区", "Outpatient Bldg 6F, Zone A"),
    ("EBH", "耳鼻咽喉头颈外科", "Otorhinolaryngology", "五官科", "门诊楼6层 B区", "Outpatient Bldg 6F, Zone B"),
    ("KQ", "口腔科", "Stomatology", "五官科", "门诊楼6层 C区", "Outpatient Bldg 6F, Zone C"),
    ("PFK", "皮肤科", "Dermatology", "皮肤科", "门诊楼6层 D区", "Outpatient Bldg 6F, Zone D"),
    ("ZYK", "中医科", "Traditional Chinese Medicine", "中医", "门诊楼1层 C区", "Outpatient Bldg 1F, Zone C"),
    ("KFYX", "康复医学科", "Rehabilitation Medicine", "康复", "门诊楼1层 D区", "Outpatient Bldg 1F, Zone D"),
    ("ZLK", "肿瘤科", "Oncology", "内科", "门诊楼7层 A区", "Outpatient Bldg 7F, Zone A"),
    ("JSXL", "精神心理科", "Psychological Medicine", "精神心理", "门诊楼7层 B区", "Outpatient Bldg 7F, Zone B"),
]

SPECIALTIES: dict[str, list[str]] = {
    "JZNK": ["急危重症救治", "胸痛、腹痛鉴别诊断", "急性中毒救治", "发热待查"],
    "XXG": ["冠心病介入治疗", "高血压及心律失常", "心力衰竭", "心脏起搏与电生理"],
    "HXK": ["慢性阻塞性肺疾病", "支气管哮喘", "肺部感染", "睡眠呼吸暂停"],
    "XHK": ["消化内镜诊疗", "胃食管反流病", "肝硬化", "炎症性肠病"],
    "NFM": ["糖尿病及并发症", "甲状腺疾病", "骨质疏松", "肥胖与代谢"],
    "SJNK": ["脑血管病", "癫痫", "帕金森病", "头痛与眩晕"],
    "SNK": ["慢性肾病", "血液透析", "肾小球肾炎", "尿酸代谢异常"],
    "LNYX": ["老年综合评估", "老年多病共存", "认知障碍", "跌倒风险评估"],
    "PTWK": ["甲状腺乳腺外科", "胃肠外科", "肝胆外科", "疝与腹壁外科"],
    "GK": ["关节置换", "脊柱外科", "运动医学", "创伤骨科"],
    "MNWK": ["泌尿系结石", "前列腺疾病", "泌尿系肿瘤", "男科"],
    "SJWK": ["颅脑创伤", "脑肿瘤", "脑血管介入", "功能神经外科"],
    "XXWK": ["肺癌微创手术", "食管疾病", "心脏瓣膜病", "纵隔肿瘤"],
    "FK": ["妇科肿瘤", "宫腔镜与腹腔镜", "更年期保健", "盆底疾病"],
    "CK": ["高危妊娠", "产前诊断", "妊娠期糖尿病", "孕期保健"],
    "EK": ["小儿呼吸系统疾病", "新生儿疾病", "小儿消化", "儿童保健"],
    "YK": ["白内障", "青光眼", "眼底病", "屈光不正"],
    "EBH": ["鼻窦炎", "听力障碍", "咽喉疾病", "头颈肿瘤"],
    "KQ": ["牙体牙髓", "口腔修复", "口腔正畸", "牙周病"],
    "PFK": ["湿疹皮炎", "银屑病", "痤疮", "皮肤美容"],
    "ZYK": ["中医内科调理", "针灸推拿", "脾胃病", "失眠"],
    "KFYX": ["脑卒中康复", "骨关节康复", "颈肩腰腿痛", "心肺康复"],
    "ZLK": ["肺癌综合治疗", "消化道肿瘤", "靶向与免疫治疗", "肿瘤姑息治疗"],
    "JSXL": ["焦虑抑郁", "睡眠障碍", "青少年心理", "老年精神障碍"],
}

# title, English title, fee in fen
TITLES: list[tuple[str, str, int]] = [
    ("主任医师", "Chief Physician", 5000),
    ("副主任医师", "Associate Chief Physician", 3000),
    ("主治医师", "Attending Physician", 2000),
    ("住院医师", "Resident Physician", 1000),
]

# Doctors who also sit in a second department: (home department, second department).
SECOND_SEATS = [("XXG", "LNYX"), ("NFM", "LNYX"), ("SJNK", "KFYX"), ("PTWK", "ZLK"), ("FK", "CK"), ("ZYK", "KFYX")]

MORNING = ("08:00", "12:00")
AFTERNOON = ("14:00", "17:30")
EMERGENCY_SHIFTS = [("00:00", "08:00"), ("08:00", "16:00"), ("16:00", "24:00")]

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈"
            "姚卢钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严赖洪武孔")
GIVEN_MALE = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆志建国文峰成康永林海东"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀兰英玲桂萍红梅琳雪婷慧颖佳倩洁琴云莉燕丹凤瑶"

REGIONS = [
    ("360702", "江西省赣州市章贡区"), ("360102", "江西省南昌市东湖区"), ("110105", "北京市朝阳区"),
    ("310104", "上海市徐汇区"), ("440106", "广东省广州市天河区"), ("330106", "浙江省杭州市西湖区"),
    ("320102", "江苏省南京市玄武区"), ("420106", "湖北省武汉市武昌区"), ("430102", "湖南省长沙市芙蓉区"),
    ("510107", "四川省成都市武侯区"), ("350203", "福建省厦门市思明区"), ("370202", "山东省青岛市市南区"),
]
STREETS = ["人民路", "解放路", "中山路", "建设路", "文化路", "红旗大道", "长征路", "新华街", "胜利路", "和平路",
           "青年路", "滨江大道", "光明街", "东风路", "迎宾大道"]
ESTATES = ["阳光花园", "锦绣家园", "幸福里", "翠湖苑", "书香门第", "金色家园", "滨江花城", "紫荆小区"]
PHONE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                  "157", "158", "159", "176", "177", "180", "181", "182", "186", "187", "188", "189", "199"]

# category, name, specification, unit, unit price in fen
BILL_ITEMS = [
    ("西药费", "阿莫西林胶囊", "0.25g×24粒", "盒", 1850), ("西药费", "硝苯地平控释片", "30mg×7片", "盒", 3260),
    ("西药费", "二甲双胍缓释片", "0.5g×30片", "盒", 2480), ("西药费", "奥美拉唑肠溶胶囊", "20mg×14粒", "盒", 2150),
    ("西药费", "布洛芬缓释胶囊", "0.3g×20粒", "盒", 1620), ("中成药费", "连花清瘟胶囊", "0.35g×24粒", "盒", 2890),
    ("检查费", "心电图检查", "十二导联", "次", 2500), ("检查费", "胸部X线摄影", "正位", "次", 8000),
    ("检查费", "腹部彩色多普勒超声", "肝胆胰脾", "次", 16000), ("检查费", "头颅CT平扫", "", "次", 28000),
    ("化验费", "血常规", "五分类", "项", 2000), ("化验费", "肝功能", "八项", "项", 4500),
    ("化验费", "空腹血糖", "", "项", 800), ("化验费", "血脂四项", "", "项", 3600),
    ("治疗费", "静脉输液", "", "组", 1500), ("治疗费", "雾化吸入", "", "次", 1200),
]

# code, name, unit, low, high (the reference interval); female intervals where they differ
LAB_PANELS: dict[str, tuple[str, str, list[tuple[str, str, str, float, float, tuple[float, float] | None]]]] = {
    "CBC": ("血常规", "全血", [
        ("WBC", "白细胞计数", "×10^9/L", 3.5, 9.5, None),
        ("RBC", "红细胞计数", "×10^12/L", 4.3, 5.8, (3.8, 5.1)),
        ("HGB", "血红蛋白", "g/L", 130, 175, (115, 150)),
        ("PLT", "血小板计数", "×10^9/L", 125, 350, None),
        ("NEUT%", "中性粒细胞百分比", "%", 40, 75, None),
        ("LYMPH%", "淋巴细胞百分比", "%", 20, 50, None),
    ]),
    "LFT": ("肝功能", "血清", [
        ("ALT", "丙氨酸氨基转移酶", "U/L", 9, 50, (7, 40)),
        ("AST", "天门冬氨酸氨基转移酶", "U/L", 15, 40, (13, 35)),
        ("TBIL", "总胆红素", "μmol/L", 0, 21, None),
        ("ALB", "白蛋白", "g/L", 40, 55, None),
    ]),
    "GLU": ("空腹血糖", "血清", [
        ("GLU", "葡萄糖", "mmol/L", 3.9, 6.1, None),
    ]),
    "LIPID": ("血脂四项", "血清", [
        ("TC", "总胆固醇", "mmol/L", 0, 5.2, None),
        ("TG", "甘油三酯", "mmol/L", 0, 1.7, None),
        ("HDL-C", "高密度脂蛋白胆固醇", "mmol/L", 1.04, 2.0, None),
        ("LDL-C", "低密度脂蛋白胆固醇", "mmol/L", 0, 3.4, None),
    ]),
}

PATIENT_COUNT = 220


def is_seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(HisDepartment)))


def seed_reference_his(sessions: sessionmaker[Session], cipher: FieldCipher, tz: ZoneInfo, seed: int,
                       today: date) -> bool:
    """Fill an empty reference HIS; returns False (and changes nothing) when it already holds a hospital."""
    rng = random.Random(seed)
    with sessions() as session, session.begin():
        if is_seeded(session):
            return False
        doctors = _seed_departments_and_doctors(session, rng)
        _seed_templates(session, rng, doctors)
        patients = _seed_patients(session, rng, cipher)
        session.flush()
        _seed_bills_and_reports(session, rng, patients, tz, today)
        session.flush()
        # Added later than the rest: a generator of its own keeps everything above exactly as it was.
        _seed_clinics_and_documents(session, random.Random(seed + 8), doctors, patients, tz, today)
        session.add(HisEHealthCard(code_index=ehealth_code_index(cipher, DEMO_EHEALTH_CODE),
                                   patient_id=DEMO_PATIENT_ID))
    return True


def _person_name(rng: random.Random, female: bool) -> str:
    pool = GIVEN_FEMALE if female else GIVEN_MALE
    given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.7 else "")
    return rng.choice(SURNAMES) + given


def _seed_departments_and_doctors(session: Session, rng: random.Random) -> dict[str, list[str]]:
    """Returns the doctor codes of each department (home doctors and second seats)."""
    members: dict[str, list[str]] = {}
    used_names: set[str] = set()
    number = 0
    for order, (code, name, name_en, category, location, location_en) in enumerate(DEPARTMENTS):
        session.add(HisDepartment(code=code, name=name, name_en=name_en, category=category, location=location,
                                  location_en=location_en, sort_order=order))
        members[code] = []
        # One chief, one or two associate chiefs, one or two attendings, sometimes a resident.
        ladder = [0] + [1] * rng.randint(1, 2) + [2] * rng.randint(1, 2) + ([3] if rng.random() < 0.5 else [])
        if code == "JZNK":
            ladder = [1, 2, 2, 3]
        for title_index in ladder:
            number += 1
            doctor_code = f"D{number:04d}"
            while True:
                doctor_name = _person_name(rng, rng.random() < 0.45)
                if doctor_name not in used_names:
                    used_names.add(doctor_name)
                    break
            title, title_en, fee = TITLES[title_index]
            specialty = "、".join(rng.sample(SPECIALTIES[code], 2))
            session.add(HisDoctor(code=doctor_code, name=doctor_name, title=title, title_en=title_en,
                                  specialty=specialty, fee_fen=fee, initials=name_initials(doctor_name)))
            members[code].append(doctor_code)
    session.flush()
    for home, second in SECOND_SEATS:
        doctor_code = members[home][0 if rng.random() < 0.5 else 1]
        members[second].append(doctor_code)
    for dept_code, doctor_codes in members.items():
        for doctor_code in doctor_codes:
            session.add(HisDoctorDepartment(doctor_code=doctor_code, dept_code=dept_code))
    return members


def _seed_templates(session: Session, rng: random.Random, members: dict[str, list[str]]) -> None:
    for dept_code, doctor_codes in members.items():
        if dept_code == "JZNK":
            # Round the clock, every day: three shifts of hourly slots, the doctors rotating by weekday.
            for weekday in range(7):
                for shift, (start, end) in enumerate(EMERGENCY_SHIFTS):
                    doctor = doctor_codes[(weekday + shift) % len(doctor_codes)]
                    session.add(HisSessionTemplate(dept_code=dept_code, doctor_code=doctor, weekday=weekday,
                                                   start=start, end=end, slot_minutes=60, capacity=10))
            continue
        half_days = [(weekday, half) for weekday in range(6) for half in (MORNING, AFTERNOON)
                     if not (weekday == 5 and half == AFTERNOON)]
        for weekday, (start, end) in half_days:
            for doctor in rng.sample(doctor_codes, k=min(len(doctor_codes), rng.choice((1, 1, 2)))):
                session.add(HisSessionTemplate(dept_code=dept_code, doctor_code=doctor, weekday=weekday, start=start,
                                               end=end, slot_minutes=30, capacity=rng.randint(2, 4)))


def _seed_patients(session: Session, rng: random.Random, cipher: FieldCipher) -> list[HisPatient]:
    patients = [HisPatient(patient_id=DEMO_PATIENT_ID, name=DEMO_PATIENT["name"],
                           id_number=DEMO_PATIENT["id_number"],
                           id_index=id_number_index(cipher, DEMO_PATIENT["id_number"]),
                           gender=DEMO_PATIENT["gender"], birth=date.fromisoformat(DEMO_PATIENT["birth"]),
                           phone="13979712345", address=DEMO_PATIENT["address"])]
    seen = {DEMO_PATIENT["id_number"]}
    while len(patients) < PATIENT_COUNT:
        female = rng.random() < 0.52
        region, place = rng.choice(REGIONS)
        birth = date(1935, 1, 1) + timedelta(days=rng.randint(0, (date(2023, 12, 31) - date(1935, 1, 1)).days))
        sequence = rng.randint(0, 99) * 10 + rng.choice((0, 2, 4, 6, 8) if female else (1, 3, 5, 7, 9))
        number = id_number(region, birth, sequence)
        if number in seen:
            continue
        seen.add(number)
        address = f"{place}{rng.choice(STREETS)}{rng.randint(1, 399)}号"
        if rng.random() < 0.6:
            address += f"{rng.choice(ESTATES)}{rng.randint(1, 30)}栋{rng.randint(1, 30)}{rng.randint(1, 4):02d}室"
        patients.append(HisPatient(
            patient_id=f"P{len(patients):08d}", name=_person_name(rng, female), id_number=number,
            id_index=id_number_index(cipher, number), gender="女" if female else "男", birth=birth,
            phone=rng.choice(PHONE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}", address=address))
    session.add_all(patients)
    return patients


def _lab_value(rng: random.Random, low: float, high: float) -> tuple[str, str]:
    span = high - low
    roll = rng.random()
    if roll < 0.12:
        value, flag = high + span * rng.uniform(0.05, 0.4), "H"
    elif roll < 0.2 and low > 0:
        value, flag = max(low - span * rng.uniform(0.05, 0.3), 0.1), "L"
    else:
        value, flag = rng.uniform(low, high), ""
    digits = 0 if high >= 100 else (1 if high >= 10 else 2)
    return f"{value:.{digits}f}", flag


def _seed_bills_and_reports(session: Session, rng: random.Random, patients: list[HisPatient], tz: ZoneInfo,
                            today: date) -> None:
    outpatient = [d[0] for d in DEPARTMENTS if d[0] != "JZNK"]
    doctors_by_dept: dict[str, list[str]] = {}
    for link in session.scalars(select(HisDoctorDepartment)):
        doctors_by_dept.setdefault(link.dept_code, []).append(link.doctor_code)
    bill_number = report_number = 0
    for index, patient in enumerate(patients):
        if index == 0 or rng.random() < 0.35:
            for _ in range(1 if index == 0 else rng.randint(1, 2)):
                bill_number += 1
                dept = rng.choice(outpatient)
                issued = datetime.combine(today - timedelta(days=rng.randint(0, 3)),
                                          time(rng.randint(8, 16), rng.randint(0, 59)), tzinfo=tz)
                bill = HisBill(bill_no=f"B{today:%Y%m%d}{bill_number:05d}", patient_id=patient.patient_id,
                               dept_code=dept, doctor_code=rng.choice(doctors_by_dept[dept]), issued_at=issued,
                               status="PENDING", total_fen=0)
                session.add(bill)
                total = 0
                for category, name, spec, unit, price in rng.sample(BILL_ITEMS, rng.randint(1, 5)):
                    quantity = rng.randint(1, 3) if category in ("西药费", "中成药费") else 1
                    total += quantity * price
                    session.add(HisBillItem(bill_no=bill.bill_no, category=category, name=name, spec=spec,
                                            quantity=quantity, unit=unit, unit_price_fen=price,
                                            amount_fen=quantity * price))
                bill.total_fen = total
        if index == 0 or rng.random() < 0.3:
            panels = ["CBC"] if index == 0 else rng.sample(sorted(LAB_PANELS), rng.randint(1, 2))
            for panel in panels:
                report_number += 1
                title, specimen, items = LAB_PANELS[panel]
                collected = datetime.combine(today - timedelta(days=rng.randint(0, 7)),
                                             time(rng.randint(7, 10), rng.randint(0, 59)), tzinfo=tz)
                report = HisLabReport(report_no=f"LAB{report_number:07d}", patient_id=patient.patient_id,
                                      title=title, specimen=specimen, dept_code=rng.choice(outpatient),
                                      collected_at=collected,
                                      reported_at=collected + timedelta(hours=rng.randint(1, 6)))
                session.add(report)
                for code, name, unit, low, high, female_range in items:
                    if female_range and patient.gender == "女":
                        low, high = female_range
                    value, flag = _lab_value(rng, low, high)
                    session.add(HisLabResult(report_no=report.report_no, code=code, name=name, value=value, unit=unit,
                                             reference_range=f"{low:g}-{high:g}", flag=flag))


# Clinics patients look for separately (K3): code, name, English name, clinic type, location, English location,
# the departments whose chief physicians sit in it, and its weekly sessions (weekday, start, end, slot minutes).
SPECIAL_CLINICS: list[tuple[str, str, str, str, str, str, list[str], list[tuple[int, str, str, int]]]] = [
    ("TXMZ", "特需门诊", "Special-needs clinic", "special", "门诊楼8层 特需诊区", "Outpatient Bldg 8F, Special clinic",
     ["XXG", "SJNK", "GK", "FK", "XHK"], [(weekday, "18:00", "20:00", 30) for weekday in range(5)]),
    ("MDT", "多学科联合门诊", "Multidisciplinary (MDT) clinic", "mdt", "门诊楼8层 MDT诊室",
     "Outpatient Bldg 8F, MDT room", ["ZLK", "XXWK", "HXK"], [(2, "18:00", "21:00", 60), (5, "14:00", "17:00", 60)]),
]

# modality, title, findings, impression (normal and abnormal wording)
IMAGING: list[tuple[str, str, str, str]] = [
    ("DR", "胸部X线摄影（正位）", "双肺纹理清晰，未见明显实变影。心影大小形态正常。双侧膈面光整，肋膈角锐利。",
     "心肺膈未见明显异常。"),
    ("US", "腹部彩色多普勒超声", "肝脏大小形态正常，实质回声均匀。胆囊壁光滑，腔内未见异常回声。胰、脾未见异常。",
     "肝胆胰脾未见明显异常。"),
    ("CT", "头颅CT平扫", "脑实质内未见异常密度影，脑室系统大小形态正常，中线结构居中。", "颅内未见明显异常。"),
    ("CT", "胸部CT平扫", "右肺上叶见一磨玻璃结节，直径约6mm，边界清。余肺野未见实变。纵隔淋巴结不大。",
     "右肺上叶磨玻璃结节，建议12个月后复查。"),
]

# department, chief complaint, diagnosis, advice
RECORDS: list[tuple[str, str, str, str]] = [
    ("XXG", "反复头晕2月，血压最高160/95mmHg", "原发性高血压（2级）", "低盐饮食，硝苯地平控释片30mg 每日一次，2周后复诊"),
    ("NFM", "口干多饮1月", "2型糖尿病", "二甲双胍缓释片0.5g 每日两次，控制饮食，1月后复查空腹血糖"),
    ("HXK", "咳嗽咳痰1周", "急性支气管炎", "多饮水，阿莫西林胶囊0.5g 每日三次，症状加重随诊"),
    ("XHK", "上腹痛伴反酸2周", "胃食管反流病", "奥美拉唑肠溶胶囊20mg 每日一次，避免睡前进食"),
    ("GK", "右膝关节疼痛3月", "右膝骨关节炎", "减少负重，理疗，必要时复诊"),
]


def _seed_clinics_and_documents(session: Session, rng: random.Random, members: dict[str, list[str]],
                                patients: list[HisPatient], tz: ZoneInfo, today: date) -> None:
    """The special-needs and MDT clinics, each doctor's minutes per patient, imaging reports and medical-record
    summaries. The demo patient gets one imaging report ready, one not ready yet, and two record summaries."""
    for doctor in session.scalars(select(HisDoctor).order_by(HisDoctor.code)):
        doctor.minutes_per_patient = rng.choice((6, 8, 10, 12, 15))
    for order, (code, name, name_en, clinic_type, location, location_en, homes, sessions) in enumerate(
            SPECIAL_CLINICS, start=len(DEPARTMENTS)):
        session.add(HisDepartment(code=code, name=name, name_en=name_en, category=name, location=location,
                                  location_en=location_en, sort_order=order, clinic_type=clinic_type))
        session.flush()
        chiefs = [members[home][0] for home in homes]
        for doctor_code in chiefs:
            session.add(HisDoctorDepartment(doctor_code=doctor_code, dept_code=code))
        for number, (weekday, start, end, minutes) in enumerate(sessions):
            session.add(HisSessionTemplate(dept_code=code, doctor_code=chiefs[(weekday + number) % len(chiefs)],
                                           weekday=weekday, start=start, end=end, slot_minutes=minutes,
                                           capacity=1 if clinic_type == "mdt" else 2))
    outpatient = [d[0] for d in DEPARTMENTS if d[0] != "JZNK"]
    imaging_number = record_number = 0
    for index, patient in enumerate(patients):
        studies: list[tuple[int, datetime, datetime]] = []
        if index == 0:
            examined = datetime.combine(today - timedelta(days=3), time(10, 0), tzinfo=tz)
            studies.append((0, examined, examined + timedelta(hours=4)))
            examined = datetime.combine(today, time(8, 30), tzinfo=tz)
            studies.append((1, examined, datetime.combine(today + timedelta(days=1), time(16, 0), tzinfo=tz)))
        elif rng.random() < 0.15:
            examined = datetime.combine(today - timedelta(days=rng.randint(1, 10)),
                                        time(rng.randint(8, 16), rng.randint(0, 59)), tzinfo=tz)
            studies.append((rng.randrange(len(IMAGING)), examined, examined + timedelta(hours=rng.randint(2, 24))))
        for study, examined, reported in studies:
            imaging_number += 1
            modality, title, findings, impression = IMAGING[study]
            session.add(HisImagingReport(report_no=f"IMG{imaging_number:07d}", patient_id=patient.patient_id,
                                         dept_code=rng.choice(outpatient), modality=modality, title=title,
                                         findings=findings, impression=impression, examined_at=examined,
                                         reported_at=reported, printed_count=0))
        visits = [0, 1] if index == 0 else ([rng.randrange(len(RECORDS))] if rng.random() < 0.2 else [])
        for visit in visits:
            record_number += 1
            dept, complaint, diagnosis, advice = RECORDS[visit]
            visited = datetime.combine(today - timedelta(days=rng.randint(5, 60)),
                                       time(rng.randint(8, 16), rng.randint(0, 59)), tzinfo=tz)
            session.add(HisMedicalRecord(record_no=f"MR{record_number:08d}", patient_id=patient.patient_id,
                                         dept_code=dept, doctor_code=members[dept][0], visited_at=visited,
                                         complaint=complaint, diagnosis=diagnosis, advice=advice,
                                         printed_count=0))
